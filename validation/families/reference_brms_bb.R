# Bayesian reference (brms, default priors) for the cbpp beta-binomial model with a herd effect,
# where glmmTMB's ML puts the herd SD at 0 and the posterior shares the overdispersion.
# Run from the repository root: Rscript validation/families/reference_brms_bb.R
suppressMessages(library(brms))
dir <- "validation/families"
d <- read.csv(file.path(dir, "data_cbpp.csv"))
fit <- brm(incidence | trials(size) ~ period + (1 | herd), family = beta_binomial(), data = d,
           chains = 4, iter = 2000, warmup = 1000, seed = 1, refresh = 0, cores = 2)
f <- fixef(fit)
s <- VarCorr(fit)$herd$sd
phi <- posterior_summary(fit, variable = "phi")
out <- rbind(data.frame(term = rownames(f), estimate = f[, 1], se = f[, 2]),
             data.frame(term = "sd(Intercept|herd)", estimate = s[1, 1], se = s[1, 2]),
             data.frame(term = "phi", estimate = phi[1, 1], se = phi[1, 2]))
write.csv(out, file.path(dir, "ref_cbpp_bb_brms.csv"), row.names = FALSE)
print(out)
print(prior_summary(fit))

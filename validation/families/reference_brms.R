# Bayesian references (brms 2.18, default priors) for the Salamanders ZIP, where the posterior
# means of the weakly identified parts differ from glmmTMB's ML estimates.
# Run from the repository root: Rscript validation/families/reference_brms.R
suppressMessages(library(brms))
dir <- "validation/families"
sal <- read.csv(file.path(dir, "data_salamanders.csv"))
sal$mined <- factor(sal$mined, levels = c("yes", "no"))
fit <- brm(bf(count ~ mined + (1 | site), zi ~ mined), family = zero_inflated_poisson(), data = sal,
           chains = 2, iter = 2000, warmup = 1000, seed = 1, refresh = 0, cores = 2)
f <- fixef(fit)
s <- VarCorr(fit)$site$sd
out <- rbind(data.frame(term = rownames(f), estimate = f[, 1], se = f[, 2]),
             data.frame(term = "sd(Intercept|site)", estimate = s[1, 1], se = s[1, 2]))
write.csv(out, file.path(dir, "ref_zip_brms.csv"), row.names = FALSE)
print(out)

# Bayesian references (brms 2.18, default priors) for the Salamanders zero-inflated models, where
# the posterior means of the weakly identified parts (23 sites) differ from glmmTMB's ML estimates.
# Run from the repository root: Rscript validation/families/reference_brms.R
# (Debian's r-cran-bh lacks include/: point R_LIBS at a copy of BH with include/boost linked to
# /usr/include/boost, see validation/README.md)
suppressMessages(library(brms))
dir <- "validation/families"
sal <- read.csv(file.path(dir, "data_salamanders.csv"))
sal$mined <- factor(sal$mined, levels = c("yes", "no"))
one <- function(family, file) {
  fit <- brm(bf(count ~ mined + (1 | site), zi ~ mined), family = family, data = sal,
             chains = 4, iter = 2000, warmup = 1000, seed = 1, refresh = 0, cores = 2)
  f <- fixef(fit)
  s <- VarCorr(fit)$site$sd
  out <- rbind(data.frame(term = rownames(f), estimate = f[, 1], se = f[, 2]),
               data.frame(term = "sd(Intercept|site)", estimate = s[1, 1], se = s[1, 2]))
  if (family$family == "zero_inflated_negbinomial") {
    sh <- posterior_summary(fit, variable = "shape")
    out <- rbind(out, data.frame(term = "shape", estimate = sh[1, 1], se = sh[1, 2]))
  }
  write.csv(out, file.path(dir, file), row.names = FALSE)
  print(out)
  print(prior_summary(fit))
}
one(zero_inflated_poisson(), "ref_zip_brms.csv")
one(zero_inflated_negbinomial(), "ref_zinb_brms.csv")

# References for validation/response (issue 19: response terms). Run: Rscript reference.R
# Writes reference_*.csv: term, estimate, se (posterior mean / sd for brms).
suppressMessages({library(survival); library(lme4); library(glmmTMB)})
out <- function(name, est, se, extra = list()) {
  df <- data.frame(term = names(est), estimate = unname(est), se = unname(se))
  write.csv(df, paste0("reference_", name, ".csv"), row.names = FALSE)
  print(name); print(df)
}
kidney <- read.csv("kidney.csv")
# 1. survreg, lognormal AFT, no patient effect (ML): time | cens(censored) ~ age + sex
s <- survreg(Surv(time, 1 - censored) ~ age + sex, data = kidney, dist = "lognormal")
est <- c(coef(s), sigma = s$scale); se <- c(sqrt(diag(vcov(s)))[1:3], sigma = s$scale * sqrt(vcov(s)[4, 4]))
names(est)[1:3] <- names(se)[1:3] <- c("Intercept", "age", "sex[male]")
out("kidney_survreg", est, se)
# 2. lme4 precision weights (REML): Reaction | weights(w) ~ Days + (1|Subject)
ss <- read.csv("sleepstudy_w.csv")
m <- lmer(Reaction ~ Days + (1 | Subject), data = ss, weights = w)
vc <- as.data.frame(VarCorr(m))
est <- c(fixef(m), "1|Subject_sigma" = vc$sdcor[1], sigma = sigma(m))
se <- c(sqrt(diag(vcov(m))), NA, NA)
names(est)[1] <- names(se)[1] <- "Intercept"
out("sleepstudy_lmer_weights", est, se)
# 3. glmmTMB weights on a gaussian model multiply the log-likelihood: weights(w, type = "loglik")
g <- glmmTMB(Reaction ~ Days + (1 | Subject), data = ss, weights = w, REML = TRUE)
est <- c(fixef(g)$cond, "1|Subject_sigma" = sqrt(VarCorr(g)$cond$Subject[1]), sigma = sigma(g))
se <- c(sqrt(diag(vcov(g)$cond)), NA, NA)
names(est)[1] <- names(se)[1] <- "Intercept"
out("sleepstudy_glmmtmb_weights", est, se)

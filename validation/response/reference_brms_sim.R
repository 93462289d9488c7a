# brms references for truncation and interval/left censoring on simulated data (seeded).
# Run: R_LIBS=/tmp/rlib Rscript reference_brms_sim.R   (see validation/README.md for the BH stub)
suppressMessages(library(brms))
set.seed(19)
# 1. zero-truncated Poisson with a group effect: y | trunc(lb = 1) ~ x + (1|g)
n <- 400; g <- sample(1:20, n, TRUE); x <- rnorm(n)
y <- rpois(n, exp(0.2 + 0.5 * x + rnorm(20, 0, 0.4)[g]))
zt <- data.frame(y = y, x = round(x, 4), g = paste0("g", g))[y >= 1, ]
write.csv(zt, "ztpois.csv", row.names = FALSE)
# 2. lognormal concentrations with a detection limit (left-censored at 0.5) and interval-recorded
#    values (between the two whole numbers around the value, for a third of the rows)
n <- 300; g <- sample(1:15, n, TRUE); x <- rnorm(n)
conc <- exp(0.3 + 0.6 * x + rnorm(15, 0, 0.5)[g] + rnorm(n, 0, 0.7))
cens <- ifelse(conc < 0.5, "left", ifelse(runif(n) < 1/3, "interval", "none"))
lo <- ifelse(cens == "left", 0.5, ifelse(cens == "interval", pmax(floor(conc), 0.5), conc))
hi <- ifelse(cens == "interval", pmax(floor(conc), 0.5) + 1, NA)
cens[cens == "interval" & conc < lo] <- "none"  # cannot happen, kept for clarity
lc <- data.frame(conc = round(lo, 5), upper = hi, cens = cens, x = round(x, 4), g = paste0("g", g))
write.csv(lc, "detection.csv", row.names = FALSE, na = "")
summ <- function(fit, keep, terms, file) {
  s <- posterior_summary(fit)
  df <- data.frame(term = terms, estimate = s[keep, "Estimate"], se = s[keep, "Est.Error"])
  write.csv(df, file, row.names = FALSE); print(df)
}
f1 <- brm(y | trunc(lb = 1) ~ x + (1 | g), data = zt, family = poisson(), chains = 4, iter = 2000, cores = 1, seed = 1, refresh = 0)
summ(f1, c("b_Intercept", "b_x", "sd_g__Intercept"), c("Intercept", "x", "1|g_sigma"), "reference_ztpois_brms.csv")
lc$upper[is.na(lc$upper)] <- 0  # brms ignores y2 on the other rows but refuses NA
f2 <- brm(conc | cens(cens, upper) ~ x + (1 | g), data = lc, family = lognormal(), chains = 4, iter = 2000, cores = 1, seed = 1, refresh = 0)
summ(f2, c("b_Intercept", "b_x", "sd_g__Intercept", "sigma"), c("Intercept", "x", "1|g_sigma", "sigma"), "reference_detection_brms.csv")

# References for hlm's issue-19 families (validation/README.md, "Issue 19: families").
# Run from the repository root: Rscript validation/families/reference.R
# Writes the datasets (data_*.csv) and the R estimates (ref_*.csv: term, estimate, se).
suppressMessages({library(glmmTMB); library(lme4); library(survival)})
dir <- "validation/families"
out <- function(name, df) write.csv(df, file.path(dir, name), row.names = FALSE)
fixed <- function(fit, comp = "cond", prefix = "") {
  s <- summary(fit)$coefficients[[comp]]
  data.frame(term = paste0(prefix, rownames(s)), estimate = s[, 1], se = s[, 2])
}
sds <- function(fit) {
  v <- VarCorr(fit)$cond
  data.frame(term = paste0("sd(Intercept|", names(v), ")"), estimate = sapply(v, function(m) attr(m, "stddev")), se = NA)
}

data(Salamanders, package = "glmmTMB")
sal <- Salamanders[, c("site", "mined", "count")]
sal$site <- as.character(sal$site); sal$mined <- factor(sal$mined, levels = c("yes", "no"))
out("data_salamanders.csv", sal)
zip <- glmmTMB(count ~ mined + (1 | site), zi = ~ mined, family = poisson, data = sal)
out("ref_zip.csv", rbind(fixed(zip), fixed(zip, "zi", "zi_"), sds(zip)))
zinb <- glmmTMB(count ~ mined + (1 | site), zi = ~ mined, family = nbinom2, data = sal)
out("ref_zinb.csv", rbind(fixed(zinb), fixed(zinb, "zi", "zi_"), sds(zinb),
                          data.frame(term = "alpha", estimate = sigma(zinb), se = NA)))

data(Owls, package = "glmmTMB")
owls <- Owls[, c("Nest", "FoodTreatment", "SexParent", "SiblingNegotiation", "BroodSize")]
owls$Nest <- as.character(owls$Nest)
out("data_owls.csv", owls)
nb <- glmmTMB(SiblingNegotiation ~ FoodTreatment * SexParent + offset(log(BroodSize)) + (1 | Nest),
              family = nbinom2, data = owls)
out("ref_owls_nb.csv", rbind(fixed(nb), sds(nb), data.frame(term = "alpha", estimate = sigma(nb), se = NA)))

data(cbpp, package = "lme4")
cb <- cbpp; cb$herd <- as.character(cb$herd); cb$period <- paste0("p", cb$period)
out("data_cbpp.csv", cb)
bb <- glmmTMB(cbind(incidence, size - incidence) ~ period + (1 | herd), family = betabinomial, data = cb)
out("ref_cbpp_bb.csv", rbind(fixed(bb), sds(bb), data.frame(term = "phi", estimate = sigma(bb), se = NA)))

# survival::lung, uncensored deaths only (hlm has no censoring in this branch): time ~ age + sex
lung2 <- subset(survival::lung, status == 2, select = c(time, age, sex))
lung2$sex <- ifelse(lung2$sex == 1, "male", "female")
out("data_lung.csv", lung2)
w <- survreg(Surv(time) ~ age + sex, data = lung2, dist = "weibull")
k <- 1 / w$scale
sw <- summary(w)$table
# brms/hlm: log(mean) = log(scale) + lgamma(1 + 1/shape): slopes equal survreg's, intercept shifted
out("ref_lung_weibull.csv", data.frame(term = c("Intercept", "age", "sex[male]", "shape"),
    estimate = c(sw[1, 1] + lgamma(1 + 1 / k), sw[2, 1], sw[3, 1], k), se = c(sw[1, 2], sw[2, 2], sw[3, 2], NA)))
e <- survreg(Surv(time) ~ age + sex, data = lung2, dist = "exponential")
se_ <- summary(e)$table
out("ref_lung_exponential.csv", data.frame(term = c("Intercept", "age", "sex[male]"), estimate = se_[1:3, 1], se = se_[1:3, 2]))

# beta-binomial without the herd term (with it, glmmTMB puts the herd SD at 0: phi takes the
# overdispersion), the cleaner comparison of the precision
bb0 <- glmmTMB(cbind(incidence, size - incidence) ~ period, family = betabinomial, data = cb)
out("ref_cbpp_bb0.csv", rbind(fixed(bb0), data.frame(term = "phi", estimate = sigma(bb0), se = NA)))

# the ZIP likelihood without the site term (no site SD to integrate over): ML and posterior
# means should agree closely
zip0 <- glmmTMB(count ~ mined, zi = ~ mined, family = poisson, data = sal)
out("ref_zip0.csv", rbind(fixed(zip0), fixed(zip0, "zi", "zi_")))

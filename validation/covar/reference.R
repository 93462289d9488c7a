# Reference fits (glmmTMB, nlme) for validation/README.md. Rscript reference.R > reference.txt
suppressPackageStartupMessages({library(glmmTMB); library(nlme)})
d <- read.csv("panel.csv")
d$tf <- factor(d$t); d$id <- factor(d$id); d$visit <- factor(d$visit)
show <- function(name, est, se = NULL) cat(sprintf("%-28s %10.4f %s\n", name, est, if (is.null(se)) "" else sprintf("%10.4f", se)))
ar1_pars <- function(m) { v <- VarCorr(m)$cond$id; c(sd = attr(v, "stddev")[[1]], rho = attr(v, "correlation")[1, 2]) }

cat("== 1. gaussian residual AR(1): glmmTMB y ~ x + ar1(tf + 0 | id), dispformula = ~0\n")
m1 <- glmmTMB(y ~ x + ar1(tf + 0 | id), dispformula = ~0, data = d)
cf <- summary(m1)$coefficients$cond
for (k in rownames(cf)) show(k, cf[k, 1], cf[k, 2])
p <- ar1_pars(m1); show("sigma (marginal SD)", p[["sd"]]); show("rho", p[["rho"]])
cat("-- nlme::gls(y ~ x, correlation = corAR1(form = ~ t | id), method = 'ML')\n")
g1 <- gls(y ~ x, correlation = corAR1(form = ~ t | id), data = d, method = "ML")
for (k in names(coef(g1))) show(k, coef(g1)[[k]], sqrt(diag(vcov(g1)))[[k]])
show("sigma (marginal SD)", g1$sigma); show("rho", coef(g1$modelStruct$corStruct, unconstrained = FALSE)[[1]])

cat("== 2. poisson latent AR(1): glmmTMB count ~ x + ar1(tf + 0 | id), family = poisson\n")
m2 <- glmmTMB(count ~ x + ar1(tf + 0 | id), family = poisson, data = d)
cf <- summary(m2)$coefficients$cond
for (k in rownames(cf)) show(k, cf[k, 1], cf[k, 2])
p <- ar1_pars(m2); show("sd(ar1)", p[["sd"]]); show("rho", p[["rho"]])

cat("== 3. compound symmetry: glmmTMB z ~ x + cs(0 + visit | id)\n")
m3 <- glmmTMB(z ~ x + cs(0 + visit | id), data = d)
cf <- summary(m3)$coefficients$cond
for (k in rownames(cf)) show(k, cf[k, 1], cf[k, 2])
v <- VarCorr(m3)$cond$id
for (k in names(attr(v, "stddev"))) show(paste0("sd(", k, ")"), attr(v, "stddev")[[k]])
show("rho", attr(v, "correlation")[1, 2]); show("sigma", sigma(m3))

# Variance fractions at lme4's (RE)ML estimates, with hlm's formulas (hlm_cli/outputs/varpart.py):
# group: mean over rows of z' Sigma z (sd^2 for (1|g)); fixed: var over rows of X beta (without
# the intercept, population variance); residual: sigma^2 (gaussian) or pi^2/3 (logit).
# Run: Rscript validation/varpart/reference_lme4.R > validation/varpart/reference_lme4.csv
suppressMessages(library(lme4))
frac <- function(name, fit, resid) {
  vc <- VarCorr(fit)
  X <- getME(fit, "X"); b <- fixef(fit)
  keep <- colnames(X) != "(Intercept)"
  eta <- if (any(keep)) as.vector(X[, keep, drop = FALSE] %*% b[keep]) else rep(0, nrow(X))
  fixed <- mean((eta - mean(eta))^2)
  comps <- c()
  for (g in names(vc)) {
    S <- as.matrix(vc[[g]])
    cols <- colnames(S)
    mf <- model.frame(fit)
    Z <- matrix(1, nrow(mf), length(cols))
    for (k in seq_along(cols)) if (cols[k] != "(Intercept)") Z[, k] <- mf[[cols[k]]]
    comps[g] <- mean(rowSums((Z %*% S) * Z))
  }
  res <- if (is.null(resid)) sigma(fit)^2 else resid
  v <- c(comps, fixed = fixed, residual = res)
  data.frame(model = name, component = names(v), variance = unname(v), fraction = unname(v / sum(v)))
}
out <- list()
cl <- read.csv("sample_data/cell_lines.csv"); cl$cell_line <- factor(cl$cell_line)
out[[1]] <- frac("cell_lines", lmer(logfc ~ 1 + (1|gene) + (1|cell_line), cl), NULL)
ss <- read.csv("sample_data/sleepstudy.csv"); ss$Subject <- factor(ss$Subject)
out[[2]] <- frac("sleep_int", lmer(Reaction ~ Days + (1|Subject), ss), NULL)
out[[3]] <- frac("sleep_slope", lmer(Reaction ~ Days + (Days|Subject), ss), NULL)
cb <- read.csv("sample_data/cbpp.csv"); cb$herd <- factor(cb$herd); cb$period <- factor(cb$period)
out[[4]] <- frac("cbpp", glmer(cbind(incidence, size - incidence) ~ period + (1|herd), cb, family = binomial), pi^2 / 3)
write.csv(do.call(rbind, out), stdout(), row.names = FALSE)

#!/usr/bin/env Rscript
# Frequentist reference fits with lme4 for hlm's validation.
# Run from the repository root:  Rscript validation/r/lme4_reference.R
# Writes validation/reference/lme4.json.
# lmer fits use lme4's default REML=TRUE; the glmer fit (cbpp) uses the Laplace
# approximation (nAGQ = 1, lme4's default). Fit wall times are elapsed seconds of the
# lmer()/glmer() call only (data already in memory, lme4 already loaded).
suppressPackageStartupMessages({
  library(lme4)
  library(jsonlite)
})

summarise_fit <- function(fit, formula_str, data_name, secs) {
  cf <- summary(fit)$coefficients
  fixef <- lapply(seq_len(nrow(cf)), function(i)
    list(estimate = unname(cf[i, 1]), se = unname(cf[i, 2])))
  names(fixef) <- rownames(cf)

  vc <- as.data.frame(VarCorr(fit))          # grp, var1, var2, vcov, sdcor
  sds <- setNames(list(), character(0)); cors <- setNames(list(), character(0))
  for (i in seq_len(nrow(vc))) {
    g <- vc$grp[i]
    if (g == "Residual") next
    if (is.na(vc$var2[i])) {
      sds[[g]][[vc$var1[i]]] <- vc$sdcor[i]
    } else {
      cors[[g]][[paste(vc$var1[i], vc$var2[i], sep = ",")]] <- vc$sdcor[i]
    }
  }
  fam <- family(fit)
  is_lmm <- isLMM(fit)
  list(
    data = data_name,
    formula = formula_str,
    family = fam$family,
    link = fam$link,
    method = if (is_lmm) (if (isREML(fit)) "REML" else "ML") else "Laplace",
    nobs = nobs(fit),
    ngroups = as.list(ngrps(fit)),
    fixef = fixef,
    sd = sds,
    cor = cors,
    sigma = if (is_lmm) sigma(fit) else NULL,
    logLik = as.numeric(logLik(fit)),
    REMLcrit = if (is_lmm && isREML(fit)) unname(REMLcrit(fit)) else NULL,
    singular = isSingular(fit),
    convergence_messages = as.list(fit@optinfo$conv$lme4$messages),
    fit_time_s = secs
  )
}

timed <- function(expr) {
  t0 <- proc.time()[["elapsed"]]
  val <- force(expr)
  list(fit = val, secs = round(proc.time()[["elapsed"]] - t0, 3))
}

cbpp$healthy <- cbpp$size - cbpp$incidence

specs <- list(
  sleepstudy_corr = list(data = "sleepstudy", f = "Reaction ~ Days + (Days|Subject)",
    fit = function() lmer(Reaction ~ Days + (Days | Subject), data = sleepstudy)),
  sleepstudy_uncorr = list(data = "sleepstudy", f = "Reaction ~ Days + (Days||Subject)",
    fit = function() lmer(Reaction ~ Days + (Days || Subject), data = sleepstudy)),
  penicillin = list(data = "Penicillin", f = "diameter ~ 1 + (1|plate) + (1|sample)",
    fit = function() lmer(diameter ~ 1 + (1 | plate) + (1 | sample), data = Penicillin)),
  pastes = list(data = "Pastes", f = "strength ~ 1 + (1|batch/cask)",
    fit = function() lmer(strength ~ 1 + (1 | batch / cask), data = Pastes)),
  cbpp = list(data = "cbpp", f = "cbind(incidence, size - incidence) ~ period + (1|herd)",
    fit = function() glmer(cbind(incidence, size - incidence) ~ period + (1 | herd),
                           data = cbpp, family = binomial)),
  insteval = list(data = "InstEval", f = "y ~ service + (1|s) + (1|d) + (1|dept)",
    fit = function() lmer(y ~ service + (1 | s) + (1 | d) + (1 | dept), data = InstEval))
)

# warm-up so the first timed fit does not pay for lazy loading / JIT
invisible(lmer(Reaction ~ Days + (1 | Subject), data = sleepstudy))

models <- list()
for (key in names(specs)) {
  s <- specs[[key]]
  r <- timed(s$fit())
  models[[key]] <- summarise_fit(r$fit, s$f, s$data, r$secs)
  cat(sprintf("== %s  (%.3f s)\n", key, r$secs))
  print(summary(r$fit)$coefficients)
  print(VarCorr(r$fit), comp = "Std.Dev.")
}

out <- list(
  generated = format(Sys.time(), "%Y-%m-%dT%H:%M:%SZ", tz = "UTC"),
  command = "Rscript validation/r/lme4_reference.R",
  versions = list(R = R.version.string,
                  lme4 = as.character(packageVersion("lme4")),
                  Matrix = as.character(packageVersion("Matrix"))),
  nproc = as.integer(system("nproc", intern = TRUE)),
  notes = paste(
    "lmer: REML (lme4 default). glmer (cbpp): Laplace, nAGQ=1.",
    "SEs are from summary()$coefficients. sd/cor come from as.data.frame(VarCorr());",
    "cor keys are 'term1,term2'. lme4 names the second group of (Days||Subject)",
    "'Subject.1' and the nested groups of (1|batch/cask) 'cask:batch' and 'batch'.",
    "fit_time_s is elapsed seconds of the single lmer()/glmer() call."),
  models = models
)
dir.create("validation/reference", showWarnings = FALSE, recursive = TRUE)
write_json(out, "validation/reference/lme4.json", auto_unbox = TRUE, digits = NA,
           pretty = TRUE, null = "null")
cat("wrote validation/reference/lme4.json\n")

#!/usr/bin/env Rscript
# Real-data validation (issue 16): export R datasets to CSV and fit the lme4/glmmTMB references.
# Run from the repository root:   Rscript validation/real/reference.R [NAME ...]
# Writes validation/real/data/NAME.csv and validation/real/reference/NAME.json.
#
# Every reference model is fitted to the CSV file read back with read.csv(stringsAsFactors =
# TRUE), i.e. to exactly the data hlm reads, with the same factor levels and the same baseline
# (the alphabetically/numerically first level, as in hlm). Numeric columns that are factors in
# R are converted with factor() here and passed to hlm with --categorical (see `categorical`).
# Gaussian models: lmer (REML). GLMMs: glmer (Laplace) or, for Gamma and the negative
# binomial, glmmTMB (ML, Laplace). Each JSON also holds the hlm formula, family and
# --categorical columns that validation/real/validate_real.py runs.
suppressPackageStartupMessages({
  library(lme4)
  library(glmmTMB)
  library(nlme, exclude = "lmList")
  library(jsonlite)
})

data_dir <- "validation/real/data"
ref_dir <- "validation/real/reference"
dir.create(data_dir, showWarnings = FALSE, recursive = TRUE)
dir.create(ref_dir, showWarnings = FALSE, recursive = TRUE)

# plain data.frame with factors (also ordered ones) as text: what write.csv writes
plain <- function(d) {
  d <- as.data.frame(d)
  for (n in names(d)) if (is.factor(d[[n]])) d[[n]] <- as.character(d[[n]])
  d
}
export <- function(name, d) {
  write.csv(plain(d), file.path(data_dir, paste0(name, ".csv")), row.names = FALSE)
}
readback <- function(name, categorical) {
  d <- read.csv(file.path(data_dir, paste0(name, ".csv")), stringsAsFactors = TRUE)
  for (n in categorical) d[[n]] <- factor(d[[n]])
  d
}

# ---- the datasets: name, data, R call (text, evaluated on the read-back CSV as `d`), hlm spec
specs <- list()
add <- function(name, data, call, hlm_formula, hlm_family = "gaussian", categorical = character(0),
                source, note = NULL) {
  specs[[name]] <<- list(data = data, call = call, hlm_formula = hlm_formula,
                         hlm_family = hlm_family, categorical = categorical, source = source,
                         note = note)
}

# 1. municipalities-style Gamma GLMM with uncentered log predictors.
muni_note <- NULL
if (requireNamespace("Ecdat", quietly = TRUE)) {
  data("Municipalities", package = "Ecdat")
  add("municipalities", Municipalities[, c("municipality", "year", "expenditures", "revenues", "grants")],
      "glmmTMB(expenditures ~ log(revenues) + log(grants) + (1 | municipality), family = Gamma(link = 'log'), data = d)",
      "expenditures ~ log(revenues) + log(grants) + (1|municipality)", "gamma",
      source = "Ecdat::Municipalities")
} else {
  data("Produc", package = "plm")
  add("produc_gamma", Produc[, c("state", "region", "year", "gsp", "pcap", "emp", "unemp")],
      "glmmTMB(gsp ~ log(pcap) + log(emp) + (1 | state), family = Gamma(link = 'log'), data = d)",
      "gsp ~ log(pcap) + log(emp) + (1|state)", "gamma",
      source = "plm::Produc",
      note = paste("Ecdat (home of Municipalities) is not packaged in Debian 12; plm::Produc",
                   "(48 US states x 17 years, gross state product on log public capital and log",
                   "employment, both uncentered around 10) is the same kind of model"))
}
# 2. ChickWeight, Gamma with Diet
add("chickweight_gamma", datasets::ChickWeight,
    "glmmTMB(weight ~ Time + Diet + (1 | Chick), family = Gamma(link = 'log'), data = d)",
    "weight ~ Time + Diet + (1|Chick)", "gamma", categorical = c("Diet", "Chick"),
    source = "datasets::ChickWeight")
# 3. cake, factor x numeric interaction
add("cake", lme4::cake,
    "lmer(angle ~ recipe * temp + (1 | recipe:replicate), data = d)",
    "angle ~ recipe * temp + (1|recipe:replicate)", categorical = "replicate",
    source = "lme4::cake")
# 4. VerbAgg, crossed binomial, 7,584 rows (r2 written as 0/1: 1 = "Y")
va <- lme4::VerbAgg[, c("id", "item", "r2", "Anger", "Gender", "btype")]
va$r2 <- as.integer(va$r2 == "Y")
add("verbagg", va,
    "glmer(r2 ~ Anger + Gender + btype + (1 | id) + (1 | item), family = binomial, data = d)",
    "r2 ~ Anger + Gender + btype + (1|id) + (1|item)", "bernoulli", categorical = "id",
    source = "lme4::VerbAgg (r2 as 0/1)")
# 5. Orthodont, correlated slope on an uncentered covariate
add("orthodont", nlme::Orthodont,
    "lmer(distance ~ age + Sex + (age | Subject), data = d)",
    "distance ~ age + Sex + (age|Subject)", source = "nlme::Orthodont")
# 6. Owls, factor x factor interaction, negative binomial with offset
ow <- glmmTMB::Owls[, c("Nest", "FoodTreatment", "SexParent", "ArrivalTime", "SiblingNegotiation", "BroodSize")]
ow$logBroodSize <- log(ow$BroodSize)
add("owls", ow,
    "glmmTMB(SiblingNegotiation ~ FoodTreatment * SexParent + offset(logBroodSize) + (1 | Nest), family = nbinom2, data = d)",
    "SiblingNegotiation ~ FoodTreatment * SexParent + offset(logBroodSize) + (1|Nest)", "negativebinomial",
    source = "glmmTMB::Owls")
# 7. Oats, a column named `yield`, nested groups
add("oats", nlme::Oats,
    "lmer(yield ~ nitro + Variety + (1 | Block/Variety), data = d)",
    "yield ~ nitro + Variety + (1|Block/Variety)", source = "nlme::Oats")
# 8. grouseticks, observation-level random effect
add("grouseticks", lme4::grouseticks[, c("INDEX", "TICKS", "BROOD", "HEIGHT", "YEAR", "LOCATION")],
    "glmer(TICKS ~ YEAR + HEIGHT + (1 | BROOD) + (1 | INDEX), family = poisson, data = d)",
    "TICKS ~ YEAR + HEIGHT + (1|BROOD) + (1|INDEX)", "poisson",
    categorical = c("YEAR", "BROOD", "INDEX"), source = "lme4::grouseticks",
    note = paste("glmer warns (max|grad| 0.0042, large eigenvalue: HEIGHT is uncentered, mean 463);",
                 "glmmTMB and glmer with HEIGHT centered give the same estimates and SEs to 4 digits",
                 "(intercept 11.5265, SE 1.414), so the reference stands"))
# 9-21. others
add("sleepstudy", lme4::sleepstudy, "lmer(Reaction ~ Days + (Days | Subject), data = d)",
    "Reaction ~ Days + (Days|Subject)", categorical = "Subject", source = "lme4::sleepstudy")
add("penicillin", lme4::Penicillin, "lmer(diameter ~ 1 + (1 | plate) + (1 | sample), data = d)",
    "diameter ~ 1 + (1|plate) + (1|sample)", source = "lme4::Penicillin")
add("dyestuff", lme4::Dyestuff, "lmer(Yield ~ 1 + (1 | Batch), data = d)",
    "Yield ~ 1 + (1|Batch)", source = "lme4::Dyestuff")
add("pastes", lme4::Pastes[, c("strength", "batch", "cask")],
    "lmer(strength ~ 1 + (1 | batch/cask), data = d)",
    "strength ~ 1 + (1|batch/cask)", source = "lme4::Pastes")
add("cbpp", lme4::cbpp,
    "glmer(cbind(incidence, size - incidence) ~ period + (1 | herd), family = binomial, data = d)",
    "cbind(incidence, size - incidence) ~ period + (1|herd)", "binomial",
    categorical = c("period", "herd"), source = "lme4::cbpp")
add("machines", nlme::Machines, "lmer(score ~ Machine + (1 | Worker/Machine), data = d)",
    "score ~ Machine + (1|Worker/Machine)", categorical = "Worker", source = "nlme::Machines")
add("rail", nlme::Rail, "lmer(travel ~ 1 + (1 | Rail), data = d)",
    "travel ~ 1 + (1|Rail)", categorical = "Rail", source = "nlme::Rail")
add("ergostool", nlme::ergoStool, "lmer(effort ~ Type + (1 | Subject), data = d)",
    "effort ~ Type + (1|Subject)", categorical = "Subject", source = "nlme::ergoStool")
add("exam", mlmRev::Exam[, c("school", "normexam", "standLRT", "sex", "student")],
    "lmer(normexam ~ standLRT + sex + (standLRT | school), data = d)",
    "normexam ~ standLRT + sex + (standLRT|school)", categorical = "school", source = "mlmRev::Exam")
add("contraception", mlmRev::Contraception[, c("woman", "district", "use", "livch", "age", "urban")],
    "glmer(use ~ age + urban + livch + (1 | district), family = binomial, data = d)",
    "use ~ age + urban + livch + (1|district)", "bernoulli",
    categorical = "district", source = "mlmRev::Contraception (use as 0/1: 1 = \"Y\")")
add("epil", MASS::epil[, c("y", "trt", "base", "age", "V4", "subject", "period", "lbase", "lage")],
    "glmer(y ~ trt + lbase + lage + V4 + (1 | subject), family = poisson, data = d)",
    "y ~ trt + lbase + lage + V4 + (1|subject)", "poisson", categorical = "subject",
    source = "MASS::epil")
add("bacteria", MASS::bacteria,
    "glmer(y ~ trt + week + (1 | ID), family = binomial, data = d)",
    "y ~ trt + week + (1|ID)", "bernoulli", source = "MASS::bacteria (y as 0/1: 1 = \"y\")")
add("salamanders", glmmTMB::Salamanders[, c("site", "mined", "spp", "count", "cover", "DOP", "Wtemp")],
    "glmmTMB(count ~ mined + spp + (1 | site), family = nbinom2, data = d)",
    "count ~ mined + spp + (1|site)", "negativebinomial", source = "glmmTMB::Salamanders")
add("orange", datasets::Orange, "lmer(circumference ~ age + (1 | Tree), data = d)",
    "circumference ~ age + (1|Tree)", categorical = "Tree", source = "datasets::Orange")

# responses that are factors in R become 0/1 columns (hlm's bernoulli needs 0/1)
specs$contraception$data$use <- as.integer(specs$contraception$data$use == "Y")
specs$bacteria$data$y <- as.integer(specs$bacteria$data$y == "y")

# ---- summarise a fit (lme4 or glmmTMB) on the same schema
summarise <- function(fit, name, spec, d, secs) {
  is_tmb <- inherits(fit, "glmmTMB")
  cf <- if (is_tmb) summary(fit)$coefficients$cond else summary(fit)$coefficients
  fixef <- lapply(seq_len(nrow(cf)), function(i) list(estimate = unname(cf[i, 1]), se = unname(cf[i, 2])))
  names(fixef) <- rownames(cf)
  sds <- setNames(list(), character(0)); cors <- setNames(list(), character(0))
  if (is_tmb) {
    vc <- VarCorr(fit)$cond
    for (g in names(vc)) {
      s <- attr(vc[[g]], "stddev")
      for (k in names(s)) sds[[g]][[k]] <- unname(s[[k]])
      cm <- attr(vc[[g]], "correlation")
      if (!is.null(cm) && nrow(cm) > 1)
        for (i in 2:nrow(cm)) for (j in 1:(i - 1))
          cors[[g]][[paste(rownames(cm)[j], rownames(cm)[i], sep = ",")]] <- cm[i, j]
    }
    ngroups <- lapply(fit$modelInfo$reTrms$cond$flist, nlevels)
    fam <- family(fit)
    disp <- sigma(fit)
    dispersion <- switch(fam$family,
      Gamma = list(sigma_glmmTMB = disp, hlm_alpha = 1 / disp^2,
                   meaning = "glmmTMB sigma is the CV; hlm's gamma alpha (shape) = 1/sigma^2"),
      nbinom2 = list(theta = disp, hlm_alpha = disp,
                     meaning = "glmmTMB nbinom2 theta (var = mu + mu^2/theta) = hlm's alpha"),
      list(sigma = disp))
    method <- "ML (Laplace, TMB)"
    conv <- list(pdHess = fit$sdr$pdHess, message = fit$fit$message)
    sigma_out <- NULL
  } else {
    vc <- as.data.frame(VarCorr(fit))
    for (i in seq_len(nrow(vc))) {
      g <- vc$grp[i]
      if (g == "Residual") next
      if (is.na(vc$var2[i])) sds[[g]][[vc$var1[i]]] <- vc$sdcor[i]
      else cors[[g]][[paste(vc$var1[i], vc$var2[i], sep = ",")]] <- vc$sdcor[i]
    }
    ngroups <- as.list(ngrps(fit))
    fam <- family(fit)
    method <- if (isLMM(fit)) "REML" else "Laplace (nAGQ = 1)"
    conv <- list(messages = as.list(fit@optinfo$conv$lme4$messages), singular = isSingular(fit))
    sigma_out <- if (isLMM(fit)) sigma(fit) else NULL
    dispersion <- NULL
  }
  list(
    name = name,
    source = spec$source,
    note = spec$note,
    r_call = spec$call,
    r_version = R.version.string,
    package_versions = list(lme4 = as.character(packageVersion("lme4")),
                            glmmTMB = as.character(packageVersion("glmmTMB"))),
    family = fam$family, link = fam$link, method = method,
    nobs = nobs(fit), ngroups = ngroups,
    fixef = fixef, sd = sds, cor = cors, sigma = sigma_out, dispersion = dispersion,
    logLik = as.numeric(logLik(fit)),
    convergence = conv,
    fit_time_s = secs,
    hlm = list(formula = spec$hlm_formula, family = spec$hlm_family,
               categorical = as.list(spec$categorical), data = file.path(data_dir, paste0(name, ".csv")))
  )
}

args <- commandArgs(trailingOnly = TRUE)
todo <- if (length(args)) args else names(specs)
for (name in todo) {
  spec <- specs[[name]]
  if (is.null(spec)) stop("unknown dataset ", name)
  export(name, spec$data)
  d <- readback(name, spec$categorical)
  t0 <- proc.time()[["elapsed"]]
  msgs <- character(0)
  fit <- withCallingHandlers(eval(parse(text = spec$call)),
    warning = function(w) { msgs <<- c(msgs, conditionMessage(w)); invokeRestart("muffleWarning") })
  secs <- round(proc.time()[["elapsed"]] - t0, 3)
  out <- summarise(fit, name, spec, d, secs)
  out$warnings <- as.list(msgs)
  writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, pretty = TRUE, null = "null"),
             file.path(ref_dir, paste0(name, ".json")))
  cat(sprintf("%-20s n=%5d  %6.2fs  %s\n", name, nobs(fit), secs,
              if (length(msgs)) paste("WARN:", paste(msgs, collapse = "; ")) else "ok"))
}

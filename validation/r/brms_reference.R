#!/usr/bin/env Rscript
# Bayesian reference fits with brms (rstan backend) for hlm's validation.
# Run from the repository root:  Rscript validation/r/brms_reference.R
# Writes validation/reference/brms.json and sample_data/eight_schools.csv.
#
# Sampler settings for every fit: brms default priors, chains = 4, iter = 2000,
# warmup = 1000 (1000 post-warmup draws per chain), seed = 1, cores = 2.
#
# Timing protocol (elapsed seconds, R already running and brms already loaded):
#   compile_s  = brm(..., chains = 0): brms code generation + Stan/C++ compilation.
#   sampling_s = update(<compiled>, chains = 4, recompile = FALSE): forking the chains,
#                warmup + sampling, and brms post-processing.
#   total_wall_s = compile_s + sampling_s (what one brm() call costs).
#   chain_elapsed_s = rstan::get_elapsed_time() per chain (pure sampler time).
# For the cell-line model a fresh Rscript process running one brm() call (load brms,
# compile, sample) is also timed: end_to_end_fresh_process_s / end_to_end_brm_call_s.
t_script0 <- proc.time()[["elapsed"]]
suppressPackageStartupMessages({
  library(brms)
  library(loo)
  library(posterior)
  library(jsonlite)
})
brms_load_s <- proc.time()[["elapsed"]] - t_script0

CHAINS <- 4; ITER <- 2000; WARMUP <- 1000; SEED <- 1; CORES <- 2
el <- function() proc.time()[["elapsed"]]

loadavg <- function() as.numeric(strsplit(readLines("/proc/loadavg"), " ")[[1]][1:3])

fit_timed <- function(formula, data, ...) {
  load_before <- loadavg()
  t0 <- el()
  f0 <- brm(formula, data = data, chains = 0, seed = SEED, ...)
  compile_s <- el() - t0
  t0 <- el()
  f <- update(f0, chains = CHAINS, iter = ITER, warmup = WARMUP, seed = SEED,
              cores = CORES, refresh = 0, recompile = FALSE)
  sampling_s <- el() - t0
  list(fit = f, compile_s = round(compile_s, 3), sampling_s = round(sampling_s, 3),
       total_wall_s = round(compile_s + sampling_s, 3),
       loadavg_before = load_before, loadavg_after = loadavg())
}

post <- function(fit, vars) {
  dr <- as_draws_df(fit)
  res <- lapply(vars, function(v) list(mean = mean(dr[[v]]), sd = sd(dr[[v]]),
                                       q2.5 = unname(quantile(dr[[v]], 0.025)),
                                       q97.5 = unname(quantile(dr[[v]], 0.975))))
  setNames(res, vars)
}

diagnostics <- function(fit) {
  sf <- fit$fit
  et <- rstan::get_elapsed_time(sf)
  s <- summarise_draws(as_draws_df(fit), "rhat", "ess_bulk", "ess_tail")
  s <- s[!(s$variable %in% c("lp__", "lprior")) & is.finite(s$ess_bulk), ]
  i <- which.min(s$ess_bulk)
  list(
    divergences = rstan::get_num_divergent(sf),
    max_treedepth_hits = rstan::get_num_max_treedepth(sf),
    max_treedepth = 10L,
    n_parameters_summarised = nrow(s),
    min_ess_bulk = s$ess_bulk[i], min_ess_bulk_variable = s$variable[i],
    min_ess_tail = min(s$ess_tail),
    max_rhat = max(s$rhat, na.rm = TRUE),
    chain_elapsed_s = list(warmup = unname(et[, "warmup"]), sample = unname(et[, "sample"]))
  )
}

timing <- function(r) {
  d <- diagnostics(r$fit)
  list(compile_s = r$compile_s, sampling_s = r$sampling_s, total_wall_s = r$total_wall_s,
       ess_bulk_per_s_sampling = d$min_ess_bulk / r$sampling_s,
       ess_bulk_per_s_total = d$min_ess_bulk / r$total_wall_s,
       loadavg_1_5_15min_before = r$loadavg_before, loadavg_1_5_15min_after = r$loadavg_after)
}

loo_summary <- function(l) {
  e <- l$estimates
  list(elpd_loo = e["elpd_loo", "Estimate"], elpd_loo_se = e["elpd_loo", "SE"],
       p_loo = e["p_loo", "Estimate"], p_loo_se = e["p_loo", "SE"],
       looic = e["looic", "Estimate"], looic_se = e["looic", "SE"],
       n_pareto_k_gt_0.7 = sum(l$diagnostics$pareto_k > 0.7),
       n_pareto_k_gt_0.5 = sum(l$diagnostics$pareto_k > 0.5),
       max_pareto_k = max(l$diagnostics$pareto_k))
}

models <- list()

# ---- 1. eight schools ------------------------------------------------------------------
schools <- data.frame(school = LETTERS[1:8],
                      y = c(28, 8, -3, 7, -1, 1, 18, 12),
                      sigma = c(15, 10, 16, 11, 9, 11, 10, 18))
write.csv(schools, "sample_data/eight_schools.csv", row.names = FALSE)
cat("== eight_schools\n")
r <- fit_timed(bf(y | se(sigma) ~ 1 + (1 | school)), schools)
print(summary(r$fit))
models$eight_schools <- list(
  data = "sample_data/eight_schools.csv",
  formula = "y | se(sigma) ~ 1 + (1 | school)",
  priors = "brms defaults",
  prior_summary = as.data.frame(prior_summary(r$fit))[, c("prior", "class", "coef", "group")],
  posterior = post(r$fit, c("b_Intercept", "sd_school__Intercept")),
  diagnostics = diagnostics(r$fit),
  timing = timing(r)
)

# ---- 2. sleepstudy: correlated slopes vs random intercept, LOO -------------------------
data("sleepstudy", package = "lme4")
fits <- list()
specs <- list(
  sleepstudy_corr = list(f = "Reaction ~ Days + (Days|Subject)",
    vars = c("b_Intercept", "b_Days", "sd_Subject__Intercept", "sd_Subject__Days",
             "cor_Subject__Intercept__Days", "sigma")),
  sleepstudy_intercept = list(f = "Reaction ~ Days + (1|Subject)",
    vars = c("b_Intercept", "b_Days", "sd_Subject__Intercept", "sigma")))
loos <- list()
for (key in names(specs)) {
  cat("==", key, "\n")
  r <- fit_timed(bf(as.formula(specs[[key]]$f)), sleepstudy)
  print(summary(r$fit))
  l <- loo(r$fit)
  print(l)
  loos[[key]] <- l
  models[[key]] <- list(
    data = "sample_data/sleepstudy.csv (lme4::sleepstudy)",
    formula = specs[[key]]$f,
    priors = "brms defaults",
    prior_summary = as.data.frame(prior_summary(r$fit))[, c("prior", "class", "coef", "group")],
    posterior = post(r$fit, specs[[key]]$vars),
    diagnostics = diagnostics(r$fit),
    timing = timing(r),
    loo = loo_summary(l)
  )
}
lc <- loo_compare(loos)                 # named list -> rows named by our keys
print(lc)
sleep_loo_compare <- list(
  ordering = rownames(lc),
  rows = setNames(lapply(seq_len(nrow(lc)), function(i)
    list(elpd_diff = lc[i, "elpd_diff"], se_diff = lc[i, "se_diff"])), rownames(lc))
)

# ---- 3. cell lines x genes (the timing quoted in the project's issue) ------------------
set.seed(2024)
genes <- c("KRAS", "TP53", "MYC")
alpha <- rnorm(3, -1, 0.5)            # alpha_g ~ N(-1, 0.5)
beta <- rnorm(10, 0, 0.5)             # beta_c  ~ N(0, 0.5)
cells <- expand.grid(expt = 1:3, gene_i = 1:3, cell_line = 0:9)
cells <- cells[, c("cell_line", "gene_i", "expt")]
cells$gene <- genes[cells$gene_i]
cells$logfc <- alpha[cells$gene_i] + beta[cells$cell_line + 1] + rnorm(nrow(cells), 0, 0.05)
cells <- cells[, c("cell_line", "gene", "expt", "logfc")]
cells$cell_line <- factor(cells$cell_line)
cat("== cell_lines\n")
r <- fit_timed(bf(logfc ~ 1 + (1 | gene) + (1 | cell_line)), cells)
print(summary(r$fit))
cl_vars <- c("b_Intercept", "sd_gene__Intercept", "sd_cell_line__Intercept", "sigma")
models$cell_lines <- list(
  data = "simulated in R (set.seed(2024)); rows embedded below under data_rows",
  formula = "logfc ~ 1 + (1|gene) + (1|cell_line)",
  design = "10 cell lines x 3 genes x 3 replicates = 90 rows",
  generating = list(seed = 2024, alpha_g = setNames(as.list(alpha), genes),
                    beta_c = as.list(beta), sigma = 0.05,
                    note = "alpha_g ~ N(-1,0.5), beta_c ~ N(0,0.5), drawn in that order, then noise in row order"),
  truth_identified = list(Intercept = mean(alpha) + mean(beta),
                          sd_gene__Intercept = 0.5, sd_cell_line__Intercept = 0.5,
                          sigma = 0.05),
  priors = "brms defaults",
  posterior = post(r$fit, cl_vars),
  diagnostics = diagnostics(r$fit),
  timing = timing(r),
  data_rows = cells
)
cl_compiled <- r$fit

# same compiled model on the repository's own simulated CSV (no recompilation)
if (file.exists("sample_data/cell_lines.csv")) {
  cat("== cell_lines_repo_csv\n")
  repo_cells <- read.csv("sample_data/cell_lines.csv")
  repo_cells$cell_line <- factor(repo_cells$cell_line)
  t0 <- el()
  f2 <- update(cl_compiled, newdata = repo_cells, chains = CHAINS, iter = ITER,
               warmup = WARMUP, seed = SEED, cores = CORES, refresh = 0,
               recompile = FALSE)
  s2 <- round(el() - t0, 3)
  print(summary(f2))
  d2 <- diagnostics(f2)
  models$cell_lines_repo_csv <- list(
    data = "sample_data/cell_lines.csv (written by sample_data/make_sample_data.py)",
    formula = "logfc ~ 1 + (1|gene) + (1|cell_line)",
    priors = "brms defaults",
    posterior = post(f2, cl_vars),
    diagnostics = d2,
    timing = list(compile_s = NULL, sampling_s = s2,
                  note = "reuses the compiled cell_lines model; no compile time",
                  ess_bulk_per_s_sampling = d2$min_ess_bulk / s2)
  )
}

# Cold end to end, as a user would run it: a fresh Rscript process that loads brms,
# compiles and samples in one brm() call. (Within this R session rstan would reuse the
# already compiled model, so the single call must run in a new process.)
cat("== cell_lines: fresh-process single brm() call\n")
tmp_csv <- tempfile(fileext = ".csv"); tmp_r <- tempfile(fileext = ".R")
write.csv(cells, tmp_csv, row.names = FALSE)
writeLines(c(
  "t0 <- proc.time()[['elapsed']]",
  "suppressPackageStartupMessages(library(brms))",
  sprintf("d <- read.csv('%s'); d$cell_line <- factor(d$cell_line)", tmp_csv),
  "t1 <- proc.time()[['elapsed']]",
  sprintf(paste0("f <- brm(logfc ~ 1 + (1 | gene) + (1 | cell_line), data = d, chains = %d,",
                 " iter = %d, warmup = %d, seed = %d, cores = %d, refresh = 0)"),
          CHAINS, ITER, WARMUP, SEED, CORES),
  "cat(sprintf('BRM_CALL_S=%.3f\\n', proc.time()[['elapsed']] - t1))",
  "cat(sprintf('DIVERGENT=%d\\n', rstan::get_num_divergent(f$fit)))"), tmp_r)
lb <- loadavg()
t0 <- el()
o <- system2("Rscript", tmp_r, stdout = TRUE, stderr = TRUE)
e2e <- round(el() - t0, 3)
grab <- function(tag) as.numeric(sub(paste0(".*", tag, "="), "",
                                     grep(paste0(tag, "="), o, value = TRUE)[1]))
models$cell_lines$timing$end_to_end_fresh_process_s <- e2e
models$cell_lines$timing$end_to_end_brm_call_s <- grab("BRM_CALL_S")
models$cell_lines$timing$end_to_end_divergences <- grab("DIVERGENT")
models$cell_lines$timing$end_to_end_loadavg_before <- lb
models$cell_lines$timing$end_to_end_loadavg_after <- loadavg()
models$cell_lines$timing$end_to_end_note <- paste(
  "end_to_end_fresh_process_s: new Rscript process (R start, library(brms), read CSV,",
  "one brm() call that compiles and samples). end_to_end_brm_call_s: the brm() call alone.")
cat("fresh process:", e2e, "s; brm() call:", grab("BRM_CALL_S"), "s\n")

# ---- write -------------------------------------------------------------------------------
cpu <- tryCatch(trimws(sub(".*:", "", grep("Model name", system("lscpu", intern = TRUE),
                                           value = TRUE)[1])), error = function(e) NA)
out <- list(
  generated = format(Sys.time(), "%Y-%m-%dT%H:%M:%SZ", tz = "UTC"),
  command = "Rscript validation/r/brms_reference.R",
  versions = list(R = R.version.string,
                  brms = as.character(packageVersion("brms")),
                  rstan = as.character(packageVersion("rstan")),
                  StanHeaders = as.character(packageVersion("StanHeaders")),
                  loo = as.character(packageVersion("loo")),
                  posterior = as.character(packageVersion("posterior")),
                  lme4 = as.character(packageVersion("lme4"))),
  nproc = as.integer(system("nproc", intern = TRUE)),
  cpu = cpu,
  settings = list(chains = CHAINS, iter = ITER, warmup = WARMUP, seed = SEED, cores = CORES,
                  backend = "rstan", priors = "brms defaults"),
  brms_load_s = round(brms_load_s, 3),
  notes = paste(
    "Timing: compile_s = brm(chains=0); sampling_s = update(recompile=FALSE, chains=4);",
    "total_wall_s = sum. ESS/s = min bulk ESS (posterior::summarise_draws over all saved",
    "variables except lp__ and lprior, and except constants such as sigma under se())",
    "divided by sampling_s or total_wall_s. Posterior summaries are mean, sd, 2.5% and",
    "97.5% quantiles over the 4000 post-warmup draws. loadavg_* are /proc/loadavg",
    "(1, 5, 15 min) around each fit: the host has nproc CPUs and may be shared, so",
    "timings taken under a load above nproc are inflated."),
  models = models,
  sleepstudy_loo_compare = sleep_loo_compare
)
write_json(out, "validation/reference/brms.json", auto_unbox = TRUE, digits = NA,
           pretty = TRUE, null = "null", dataframe = "rows")
cat("wrote validation/reference/brms.json; script elapsed", el() - t_script0, "s\n")

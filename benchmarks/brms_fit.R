# One brms fit, timed end to end inside a fresh R process; prints one JSON line.
# Rscript benchmarks/brms_fit.R DATA.csv "FORMULA" DRAWS CHAINS [family]
suppressPackageStartupMessages({library(brms); library(posterior); library(jsonlite)})
a <- commandArgs(trailingOnly = TRUE)
t0 <- Sys.time()
d <- read.csv(a[1])
for (col in c("gene", "cell_line", "Subject", "s", "d", "dept", "mouse")) if (col %in% names(d)) d[[col]] <- factor(d[[col]])
draws <- as.integer(a[3]); chains <- as.integer(a[4])
fam <- if (length(a) >= 5) a[5] else "gaussian"
fit <- brm(as.formula(a[2]), data = d, family = fam, chains = chains, iter = 2 * draws, warmup = draws,
           cores = min(chains, parallel::detectCores()), seed = 1, refresh = 0, silent = 2)
t1 <- Sys.time()
sf <- fit$fit
s <- summarise_draws(as_draws_df(fit), "ess_bulk", "rhat")
s <- s[!grepl("^(lp__|lprior)", s$variable), ]
el <- rstan::get_elapsed_time(sf)
cat(toJSON(list(
  wall_s = as.numeric(difftime(t1, t0, units = "secs")),
  sampling_s = max(rowSums(el)),
  divergences = rstan::get_num_divergent(sf),
  treedepth_hits = rstan::get_num_max_treedepth(sf),
  min_ess_bulk = min(s$ess_bulk, na.rm = TRUE),
  max_rhat = max(s$rhat, na.rm = TRUE),
  brms = as.character(packageVersion("brms"))), auto_unbox = TRUE), "\n")

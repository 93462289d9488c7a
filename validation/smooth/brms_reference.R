# brms reference for hlm's s() on the same gamSim(1) data (bs = "cr", hlm's basis; brms's default priors).
# Writes brms_curves.csv (posterior mean and SD of the expected response on grid.csv) and
# brms_sds.csv (posterior mean and SD of each sds). Run from the repository root:
#   Rscript validation/smooth/brms_reference.R
suppressPackageStartupMessages(library(brms))
out <- "validation/smooth"
dat <- read.csv(file.path(out, "gamsim.csv"))
grid <- read.csv(file.path(out, "grid.csv"))
fit <- brm(y ~ s(x0, bs = "cr") + s(x1, bs = "cr") + s(x2, bs = "cr") + s(x3, bs = "cr"), data = dat,
           chains = 4, iter = 2000, warmup = 1000, seed = 1, refresh = 0, cores = 2,
           control = list(adapt_delta = 0.95))
ep <- posterior_epred(fit, newdata = grid)
write.csv(data.frame(grid, mean = colMeans(ep), sd = apply(ep, 2, sd)), file.path(out, "brms_curves.csv"), row.names = FALSE)
dr <- as_draws_df(fit)
sds <- grep("^sds_", names(dr), value = TRUE)
write.csv(data.frame(parameter = sds, mean = sapply(sds, function(v) mean(dr[[v]])), sd = sapply(sds, function(v) sd(dr[[v]]))),
          file.path(out, "brms_sds.csv"), row.names = FALSE)
print(summary(fit))

# Reference curves for hlm's s(): mgcv::gamm (mixed-model form, REML) on mgcv's gamSim(1) data.
# Writes gamsim.csv (the data), grid.csv (x values per smooth, others at their means) and
# mgcv_curves.csv (fit and SE of the expected response on the grid: gamm with bs = "cr",
# the basis hlm uses, and gam with mgcv's default thin-plate bs = "tp" for comparison).
# Run: Rscript validation/smooth/reference.R   (from the repository root)
suppressPackageStartupMessages(library(mgcv))
out <- "validation/smooth"
set.seed(19)
dat <- gamSim(1, n = 400, dist = "normal", scale = 2, verbose = FALSE)[, c("y", "x0", "x1", "x2", "x3")]
write.csv(dat, file.path(out, "gamsim.csv"), row.names = FALSE)
cr <- gamm(y ~ s(x0, bs = "cr") + s(x1, bs = "cr") + s(x2, bs = "cr") + s(x3, bs = "cr"), data = dat, method = "REML")
tp <- gam(y ~ s(x0) + s(x1) + s(x2) + s(x3), data = dat, method = "REML")
means <- colMeans(dat[, -1])
grid <- do.call(rbind, lapply(c("x0", "x1", "x2", "x3"), function(v) {
  g <- as.data.frame(t(replicate(25, means)))
  g[[v]] <- seq(0.02, 0.98, length.out = 25)
  g$smooth <- v
  g
}))
pc <- predict(cr$gam, grid, se.fit = TRUE)
pt <- predict(tp, grid, se.fit = TRUE)
write.csv(grid[, c("x0", "x1", "x2", "x3")], file.path(out, "grid.csv"), row.names = FALSE)
res <- data.frame(smooth = grid$smooth, grid[, c("x0", "x1", "x2", "x3")],
                  cr_fit = pc$fit, cr_se = pc$se.fit, tp_fit = pt$fit, tp_se = pt$se.fit)
write.csv(res, file.path(out, "mgcv_curves.csv"), row.names = FALSE)
cat("gamm cr: sigma", cr$lme$sigma, " edf", round(summary(cr$gam)$edf, 2), "\n")
cat("gam tp: sigma", sqrt(tp$sig2), " edf", round(summary(tp)$edf, 2), "\n")
cat("max |cr - tp| / cr_se:", max(abs(res$cr_fit - res$tp_fit) / res$cr_se), "\n")
# the SD of each smooth's penalized coefficients in gamm's fit (hlm's and brms's sds): sigma / sqrt(sp)
cat("gamm cr sds:", round(cr$lme$sigma / sqrt(cr$gam$sp), 4), "\n")

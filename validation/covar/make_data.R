# Simulated panels for the covariance-structure validation (issue 19). Rscript make_data.R
set.seed(19)
n_id <- 40; n_t <- 8
d <- expand.grid(t = 1:n_t, id = sprintf("p%02d", 1:n_id))
d$x <- rnorm(nrow(d))
# gaussian: residual AR(1) within id, marginal SD 1.2, rho 0.6, plus no other noise
rho <- 0.6; s <- 1.2
e <- unlist(lapply(1:n_id, function(i) as.numeric(arima.sim(list(ar = rho), n = n_t, sd = s * sqrt(1 - rho^2), n.start = 200))))
d$y <- 2 + 0.5 * d$x + e
# poisson: latent AR(1) per (id, time), SD 0.7, rho 0.7
rho2 <- 0.7; s2 <- 0.7
u <- unlist(lapply(1:n_id, function(i) as.numeric(arima.sim(list(ar = rho2), n = n_t, sd = s2 * sqrt(1 - rho2^2), n.start = 200))))
d$count <- rpois(nrow(d), exp(1 + 0.3 * d$x + u))
# compound symmetry over 4 visits: heterogeneous SDs (0.5, 0.8, 1.0, 1.2), one correlation 0.5, residual SD 0.5
d$visit <- factor(paste0("v", (d$t - 1) %% 4 + 1))
R <- matrix(0.5, 4, 4); diag(R) <- 1
S <- diag(c(0.5, 0.8, 1.0, 1.2)) %*% R %*% diag(c(0.5, 0.8, 1.0, 1.2))
b <- MASS::mvrnorm(n_id, rep(0, 4), S)
d$z <- 1 - 0.4 * d$x + b[cbind(as.integer(d$id), as.integer(d$visit))] + rnorm(nrow(d), 0, 0.5)
write.csv(d, "panel.csv", row.names = FALSE)

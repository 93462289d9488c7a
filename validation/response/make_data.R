# Writes the datasets of validation/response/ (brms's kidney; lme4's sleepstudy with weights)
suppressMessages({library(brms); library(lme4)})
data("kidney", package = "brms")
write.csv(kidney, "kidney.csv", row.names = FALSE)
ss <- lme4::sleepstudy
ss$w <- 1 + (ss$Days %% 3)  # deterministic precision weights 1, 2, 3
write.csv(ss, "sleepstudy_w.csv", row.names = FALSE)

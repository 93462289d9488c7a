# brms reference for the kidney data (slow: compiles a Stan model). Run: Rscript reference_brms.R
suppressMessages(library(brms))
kidney <- read.csv("kidney.csv")
kidney$patient <- factor(kidney$patient)
fit <- brm(time | cens(censored) ~ age + sex + (1 | patient), data = kidney, family = lognormal(),
           chains = 4, iter = 2000, cores = 1, seed = 1, refresh = 0)
s <- posterior_summary(fit)
keep <- c("b_Intercept", "b_age", "b_sexmale", "sd_patient__Intercept", "sigma")
df <- data.frame(term = c("Intercept", "age", "sex[male]", "1|patient_sigma", "sigma"),
                 estimate = s[keep, "Estimate"], se = s[keep, "Est.Error"])
write.csv(df, "reference_kidney_brms.csv", row.names = FALSE)
print(df); print(prior_summary(fit))

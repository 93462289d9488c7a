# Reference for issue 19 (ordinal): ordinal::clmm on ordinal::wine.
# Rscript validation/ordinal/wine_clmm.R  -> wine.csv, wine_clmm.json (logit and probit)
suppressMessages(library(ordinal))
data(wine)
here <- "validation/ordinal"
write.csv(data.frame(rating = as.integer(as.character(wine$rating)), temp = wine$temp,
                     contact = wine$contact, judge = wine$judge),
          file.path(here, "wine.csv"), row.names = FALSE)
out <- list()
for (link in c("logit", "probit")) {
  m <- clmm(rating ~ temp + contact + (1 | judge), data = wine, link = link, nAGQ = 10)
  s <- summary(m)$coefficients
  out[[link]] <- list(
    estimate = as.list(setNames(s[, 1], rownames(s))),
    se = as.list(setNames(s[, 2], rownames(s))),
    sd_judge = unname(attr(VarCorr(m)$judge, "stddev")),
    logLik = as.numeric(logLik(m)),
    call = sprintf("clmm(rating ~ temp + contact + (1 | judge), data = wine, link = \"%s\", nAGQ = 10)", link))
}
writeLines(jsonlite::toJSON(out, auto_unbox = TRUE, digits = 10, pretty = TRUE), file.path(here, "wine_clmm.json"))
print(out$logit$estimate); print(out$logit$sd_judge)

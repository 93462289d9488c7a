#!/usr/bin/env Rscript
# Export public lme4 datasets to CSV for hlm's validation.
# Run from the repository root:  Rscript validation/r/export_data.R
# Writes sample_data/{sleepstudy,penicillin,pastes,cbpp,insteval}.csv
# (eight_schools.csv is written by validation/r/brms_reference.R).
suppressPackageStartupMessages(library(lme4))

out <- "sample_data"
dir.create(out, showWarnings = FALSE)

put <- function(df, name) {
  path <- file.path(out, name)
  write.csv(df, path, row.names = FALSE)
  cat(sprintf("%-16s %7d rows x %d cols  %8.3f MB\n", name, nrow(df), ncol(df),
              file.size(path) / 1024^2))
}

data("sleepstudy", package = "lme4")
put(sleepstudy[, c("Reaction", "Days", "Subject")], "sleepstudy.csv")

data("Penicillin", package = "lme4")
put(Penicillin[, c("diameter", "plate", "sample")], "penicillin.csv")

data("Pastes", package = "lme4")
put(Pastes[, c("strength", "batch", "cask", "sample")], "pastes.csv")

data("cbpp", package = "lme4")
cb <- cbpp[, c("herd", "incidence", "size", "period")]
cb$healthy <- cb$size - cb$incidence
put(cb, "cbpp.csv")

data("InstEval", package = "lme4")
ie <- data.frame(
  s = as.character(InstEval$s),
  d = as.character(InstEval$d),
  dept = as.character(InstEval$dept),
  service = as.integer(as.character(InstEval$service)),   # factor "0"/"1" -> 0/1
  y = as.integer(InstEval$y)                                # ordered 1..5 -> integer
)
stopifnot(nrow(ie) == 73421L, all(ie$service %in% 0:1), all(ie$y %in% 1:5))
put(ie, "insteval.csv")

cat("lme4", as.character(packageVersion("lme4")), "|", R.version.string, "\n")

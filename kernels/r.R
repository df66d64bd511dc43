# Warren's R kernel: one stateful R session of a sandbox.
#
# The protocol of python.py: on stdin a JSON header line {"len": N, "env": {...}} and N
# bytes of code per cell; the cell's output on stdout and stderr; events on fd 3, one JSON
# object per line (result, error, done). Every top-level expression of the cell is
# evaluated in the global environment, as at R's prompt: visible values are printed, and
# the last one is the cell's result. SIGINT interrupts the cell; the session lives on.

.warren <- new.env()
.warren$input <- file("stdin", open = "rb")
.warren$events <- suppressWarnings(file("/dev/fd/3", open = "w", raw = TRUE))

.warren$json_string <- function(s) {
  s <- enc2utf8(paste(s, collapse = "\n"))
  s <- gsub("\\", "\\\\", s, fixed = TRUE)
  s <- gsub("\"", "\\\"", s, fixed = TRUE)
  s <- gsub("\n", "\\n", s, fixed = TRUE)
  s <- gsub("\r", "\\r", s, fixed = TRUE)
  s <- gsub("\t", "\\t", s, fixed = TRUE)
  s <- gsub("[\001-\037]", " ", s)
  paste0("\"", s, "\"")
}

.warren$emit <- function(json) {
  flush(stdout())
  flush(stderr())
  writeLines(json, .warren$events)
  flush(.warren$events)
}

.warren$error <- function(name, value, trace) {
  .warren$emit(paste0("{\"type\":\"error\",\"name\":", .warren$json_string(name), ",\"value\":",
                      .warren$json_string(value), ",\"traceback\":", .warren$json_string(trace), "}"))
}

.warren$run <- function(code) {
  exprs <- parse(text = code, keep.source = FALSE)
  n <- length(exprs)
  for (i in seq_len(n)) {
    res <- withVisible(eval(exprs[[i]], envir = globalenv()))
    if (!res$visible) next
    if (i < n) {
      print(res$value)
    } else {
      text <- paste(utils::capture.output(print(res$value)), collapse = "\n")
      .warren$emit(paste0("{\"type\":\"result\",\"data\":{\"text/plain\":", .warren$json_string(text), "}}"))
    }
  }
}

# The header line, read byte by byte: the code after it is read in binary, and R must not
# buffer any of it as text. NULL at the end of input.
.warren$read_line <- function() {
  bytes <- raw(0)
  repeat {
    b <- readBin(.warren$input, "raw", n = 1)
    if (length(b) == 0) return(NULL)
    if (b == as.raw(10)) return(rawToChar(bytes))
    bytes <- c(bytes, b)
  }
}

.warren$emit(sprintf("{\"type\":\"ready\",\"language\":\"r\",\"pid\":%d}", Sys.getpid()))
.warren$count <- 0L
repeat {
  header <- tryCatch(.warren$read_line(), interrupt = function(i) "")
  if (is.null(header)) quit(save = "no")
  if (!nzchar(header)) next
  len <- as.integer(sub(".*\"len\":([0-9]+).*", "\\1", header))
  code <- if (!is.na(len) && len > 0) rawToChar(readBin(.warren$input, "raw", n = len)) else ""
  Encoding(code) <- "UTF-8"
  .warren$count <- .warren$count + 1L
  started <- proc.time()[["elapsed"]]
  status <- "ok"
  tryCatch(.warren$run(code),
    error = function(e) {
      status <<- "error"
      call <- conditionCall(e)
      where <- if (is.null(call)) "" else paste("Error in", paste(deparse(call), collapse = " "))
      if (startsWith(where, "Error in eval(exprs[[i]]")) where <- "" # the kernel's own call
      .warren$error(if (inherits(e, "simpleError")) "Error" else class(e)[1], conditionMessage(e), where)
    },
    interrupt = function(i) {
      status <<- "error"
      .warren$error("Interrupted", "the cell was interrupted", "")
    })
  ms <- as.integer((proc.time()[["elapsed"]] - started) * 1000)
  .warren$emit(sprintf("{\"type\":\"done\",\"status\":\"%s\",\"execution_count\":%d,\"duration_ms\":%d}",
                       status, .warren$count, ms))
}

#!/bin/bash
# Warren's bash kernel: one stateful shell context of a sandbox.
#
# The protocol of python.py: on stdin a JSON header line {"len": N, ...} then N bytes of
# code per cell; the cell's output on stdout and stderr; events on fd 3 (error, done).
# Each cell runs in this shell (eval), so variables, functions, aliases and the working
# directory live on between cells. A cell that ends with a non-zero status is an error,
# as a notebook's bash kernel reports it. A cell reads no input: its stdin is /dev/null.

__warren_count=0
printf '{"type":"ready","language":"bash","pid":%d}\n' "$$" >&3
# Between cells an interrupt (SIGINT to the kernel's process group) stops nothing.
trap ':' INT

while IFS= read -r __warren_header; do
    __warren_len=${__warren_header#*\"len\":}
    __warren_len=${__warren_len%%[,\}]*}
    __warren_code=
    if [ "$__warren_len" -gt 0 ]; then
        # The length counts bytes: read them as bytes.
        LC_ALL=C IFS= read -r -d '' -N "$__warren_len" __warren_code
    fi
    __warren_count=$((__warren_count + 1))
    __warren_started=${EPOCHREALTIME/./}
    # The cell runs at the top level (so declare makes globals), inside a one-pass loop: an
    # interrupt kills the command in the foreground, as ^C in a terminal, and the trap's
    # break skips the rest of the cell. The kernel and what the cell defined live on.
    trap 'break' INT
    for __warren_once in 1; do
        eval "$__warren_code" </dev/null
    done
    __warren_status=$?
    trap ':' INT
    __warren_ms=$(((${EPOCHREALTIME/./} - __warren_started) / 1000))
    if [ "$__warren_status" -ne 0 ]; then
        printf '{"type":"error","name":"ExitError","value":"the cell ended with status %d","traceback":""}\n' \
            "$__warren_status" >&3
        printf '{"type":"done","status":"error","exit_code":%d,"execution_count":%d,"duration_ms":%d}\n' \
            "$__warren_status" "$__warren_count" "$__warren_ms" >&3
    else
        printf '{"type":"done","status":"ok","exit_code":0,"execution_count":%d,"duration_ms":%d}\n' \
            "$__warren_count" "$__warren_ms" >&3
    fi
done

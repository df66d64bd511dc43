/* The framed protocol between warrend (host side) and warren-init (inside a sandbox).
 *
 * One connection carries one session: the host sends a REQUEST frame (JSON), optionally
 * STDIN and STDIN_EOF frames, and the agent answers with STARTED, then STDOUT/STDERR
 * chunks as the process writes them, and finally EXIT (or ERROR). A frame is
 *
 *     u32 length (big-endian, counts type + payload) | u8 type | payload
 *
 * Everything an agent sends is untrusted: lengths are bounded by the reader and every
 * read has a deadline. */
#pragma once

#include <jansson.h>

#include <stddef.h>
#include <stdint.h>

#define FRAME_MAX_PAYLOAD (16u << 20)

/* The last entry of the environment a sandbox starts with (launch.c) is not a variable but
 * the token the agent asks of requests on files.sock (init_http.h); the name cannot be a
 * variable's, and warren-init takes the entry out before anything runs. */
#define FILES_TOKEN_ENTRY "warren.files_token="

enum frame_type {
        FRAME_REQUEST = 1,   /* host -> agent: JSON */
        FRAME_STDIN = 2,     /* host -> agent: raw bytes */
        FRAME_STDIN_EOF = 3, /* host -> agent: empty */
        FRAME_STARTED = 10,  /* agent -> host: JSON {pid} */
        FRAME_STDOUT = 11,   /* agent -> host: raw bytes */
        FRAME_STDERR = 12,   /* agent -> host: raw bytes */
        FRAME_EXIT = 13,     /* agent -> host: JSON {exit_code, signal, timed_out, truncated, duration_ms} */
        FRAME_ERROR = 14,    /* agent -> host: JSON {error, code} */
        FRAME_RESULT = 15,   /* agent -> host: JSON, answer to a request that runs nothing */
        FRAME_EVENT = 16,    /* agent -> host: JSON, a context's rich output: result, display, error, file */
};

struct frame {
        uint8_t type;
        uint32_t len;
        char *payload; /* NUL-terminated for convenience; owned by the frame */
};

/* Writes one frame, all of it (retrying short writes and EINTR). Returns 0 or -errno. */
int frame_write(int fd, uint8_t type, const void *payload, size_t len);

/* Writes obj as a JSON frame of the given type, and releases it. */
int frame_send_json(int fd, uint8_t type, json_t *obj);
/* Writes an ERROR frame: {"error": <message>, "code": code}. */
int frame_send_error(int fd, const char *code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Reads one frame, waiting at most timeout_ms (-1: forever) for each part. Returns 1 with
 * *ret filled, 0 at a clean end of stream, -ETIMEDOUT, -EPROTO (bad or oversized frame,
 * max_payload bytes at most), or -errno. */
int frame_read(int fd, struct frame *ret, uint32_t max_payload, int timeout_ms);
void frame_clear(struct frame *f);

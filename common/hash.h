/* SHA-256 in hex, for API keys and other secrets that are only ever checked. */
#pragma once

#include <stddef.h>

#define SHA256_HEX_LEN 64

void sha256_hex(const void *data, size_t len, char out[SHA256_HEX_LEN + 1]);

/* HMAC-SHA-256 of data under key, in hex. */
void hmac_sha256_hex(const void *key, size_t key_len, const void *data, size_t len,
                     char out[SHA256_HEX_LEN + 1]);

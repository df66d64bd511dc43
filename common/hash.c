#include "hash.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

static void to_hex(const unsigned char md[SHA256_DIGEST_LENGTH], char out[SHA256_HEX_LEN + 1])
{
        static const char hex[] = "0123456789abcdef";
        for (int i = 0; i < SHA256_DIGEST_LENGTH; i++) {
                out[2 * i] = hex[md[i] >> 4];
                out[2 * i + 1] = hex[md[i] & 15];
        }
        out[SHA256_HEX_LEN] = 0;
}

void sha256_hex(const void *data, size_t len, char out[SHA256_HEX_LEN + 1])
{
        unsigned char md[SHA256_DIGEST_LENGTH];
        SHA256(data, len, md);
        to_hex(md, out);
}

void hmac_sha256_hex(const void *key, size_t key_len, const void *data, size_t len,
                     char out[SHA256_HEX_LEN + 1])
{
        unsigned char md[SHA256_DIGEST_LENGTH];
        unsigned int md_len = sizeof md;
        HMAC(EVP_sha256(), key, (int)key_len, data, len, md, &md_len);
        to_hex(md, out);
}

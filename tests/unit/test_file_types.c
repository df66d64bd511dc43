/* What a raw transfer's answer says about a file, and the encoder its target and names use. */
#include <stdlib.h>

#include "check.h"
#include "file_types.h"
#include "hash.h"

static void url_encode__keeps_unreserved_and_escapes_the_rest(void)
{
        char out[64];
        CHECK(url_encode("a-Z_0.~", out, sizeof out) == 7);
        CHECK_STREQ(out, "a-Z_0.~");
        CHECK(url_encode("{\"p\":\"/a b\"}", out, sizeof out) == 30);
        CHECK_STREQ(out, "%7B%22p%22%3A%22%2Fa%20b%22%7D");
        CHECK(url_encode("\xc3\xa9", out, sizeof out) == 6);
        CHECK_STREQ(out, "%C3%A9");
        CHECK(url_encode("", out, sizeof out) == 0);
        CHECK_STREQ(out, "");
}

static void url_encode__refuses_what_does_not_fit(void)
{
        char out[8];
        CHECK(url_encode("abcdefgh", out, sizeof out) == -1); /* no room for the NUL */
        CHECK(url_encode("abcdefg", out, sizeof out) == 7);
        CHECK(url_encode("abcd", out, sizeof out) == 4);
        CHECK(url_encode("ab c", out, 6) == -1);
        CHECK(url_encode("ab c", out, 7) == 6); /* exactly: six and the NUL */
        CHECK_STREQ(out, "ab%20c");
}

static void file_disposition__plain_form_is_safe_and_the_name_is_exact(void)
{
        char out[FILE_DISPOSITION_MAX];
        file_disposition("a \"b\"\r\n.txt", out);
        CHECK_STREQ(out, "attachment; filename=\"a _b___.txt\"; filename*=UTF-8''a%20%22b%22%0D%0A.txt");
        char long_name[300];
        memset(long_name, 0xff, sizeof long_name - 1);
        long_name[sizeof long_name - 1] = 0;
        file_disposition(long_name, out); /* 255 bytes of escapes still fit */
        CHECK(strlen(out) < FILE_DISPOSITION_MAX - 1 && strstr(out, "UTF-8''%FF%FF"));
}

static void file_content_type__from_the_name_then_the_bytes(void)
{
        CHECK_STREQ(file_content_type("a.JSON", "", 0), "application/json");
        CHECK_STREQ(file_content_type("notes", "hello", 5), "text/plain; charset=utf-8");
        CHECK_STREQ(file_content_type("blob", "a\0b", 3), "application/octet-stream");
        CHECK_STREQ(file_content_type("blob", "\xff\xfe", 2), "application/octet-stream");
        CHECK_STREQ(file_content_type("empty", "", 0), "application/octet-stream");
        /* 1 KiB of a longer text that ends inside a character is still text. */
        char head[2048];
        memset(head, 'a', sizeof head);
        memcpy(head + 1022, "\xe2\x82\xac", 3);
        CHECK_STREQ(file_content_type("euro", head, sizeof head), "text/plain; charset=utf-8");
}

static void file_error_status__maps_the_agents_codes(void)
{
        CHECK(file_error_status("not_found") == 404);
        CHECK(file_error_status("permission_denied") == 403);
        CHECK(file_error_status("no_space") == 507);
        CHECK(file_error_status("something_else") == 500);
}

static void hmac_sha256_hex__matches_rfc_4231(void)
{
        /* RFC 4231, test case 2. */
        char out[SHA256_HEX_LEN + 1];
        const char *data = "what do ya want for nothing?";
        hmac_sha256_hex("Jefe", 4, data, strlen(data), out);
        CHECK_STREQ(out, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

int main(void)
{
        RUN(url_encode__keeps_unreserved_and_escapes_the_rest);
        RUN(url_encode__refuses_what_does_not_fit);
        RUN(file_disposition__plain_form_is_safe_and_the_name_is_exact);
        RUN(file_content_type__from_the_name_then_the_bytes);
        RUN(file_error_status__maps_the_agents_codes);
        RUN(hmac_sha256_hex__matches_rfc_4231);
        return CHECK_SUMMARY();
}

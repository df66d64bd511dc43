/* JSON body checks: every refusal names the field and what was expected. */
#include <stdlib.h>

#include "check.h"
#include "json_fields.h"

static const struct json_field spec[] = {
    {"name", FIELD_STRING, true},
    {"rate", FIELD_INTEGER, false},
    {"tags", FIELD_ARRAY, false},
};

static int check_body(const char *text, char err[JSON_ERR_MAX])
{
        json_t *obj = NULL;
        int r = json_body_parse(text, strlen(text), false, &obj, err);
        if (r == 0)
                r = json_fields_check(obj, spec, 3, false, err);
        json_decref(obj);
        return r;
}

static void json_fields__accepts_a_valid_body(void)
{
        char err[JSON_ERR_MAX] = "";
        CHECK(check_body("{\"name\":\"a\",\"rate\":3,\"tags\":[]}", err) == 0);
}

static void json_fields__missing_field_is_named(void)
{
        char err[JSON_ERR_MAX] = "";
        CHECK(check_body("{\"rate\":3}", err) < 0);
        CHECK(strstr(err, "missing field 'name'") != NULL);
}

static void json_fields__wrong_type_names_field_and_types(void)
{
        char err[JSON_ERR_MAX] = "";
        CHECK(check_body("{\"name\":\"a\",\"rate\":\"3\"}", err) < 0);
        CHECK_STREQ(err, "field 'rate': expected an integer, got a string");
}

static void json_fields__unknown_field_is_refused(void)
{
        char err[JSON_ERR_MAX] = "";
        CHECK(check_body("{\"name\":\"a\",\"colour\":1}", err) < 0);
        CHECK_STREQ(err, "unknown field 'colour'");
}

static void json_fields__malformed_json_says_where(void)
{
        char err[JSON_ERR_MAX] = "";
        CHECK(check_body("{\"name\":", err) < 0);
        CHECK(strncmp(err, "invalid JSON at line 1", 22) == 0);
}

static void json_fields__invalid_utf8_and_nul_are_refused(void)
{
        char err[JSON_ERR_MAX] = "";
        CHECK(check_body("{\"name\":\"\xff\xfe\"}", err) < 0);
        CHECK(check_body("{\"name\":\"a\\u0000b\"}", err) < 0);
}

static void json_fields__duplicate_keys_are_refused(void)
{
        char err[JSON_ERR_MAX] = "";
        CHECK(check_body("{\"name\":\"a\",\"name\":\"b\"}", err) < 0);
}

static void json_fields__non_object_body_is_refused(void)
{
        char err[JSON_ERR_MAX] = "";
        CHECK(check_body("[1,2]", err) < 0);
        CHECK_STREQ(err, "request body must be a JSON object, not an array");
}

static void json_fields__empty_body_counts_as_object_only_when_allowed(void)
{
        char err[JSON_ERR_MAX] = "";
        json_t *obj = NULL;
        CHECK(json_body_parse("  ", 2, false, &obj, err) < 0);
        CHECK(json_body_parse("  ", 2, true, &obj, err) == 0 && json_is_object(obj));
        json_decref(obj);
}

static void json_fields__integer_range_is_enforced(void)
{
        char err[JSON_ERR_MAX] = "";
        json_t *obj = json_pack("{s:i}", "rate", -5);
        long long v = 0;
        CHECK(json_int_field(obj, "rate", 1, 100, 7, &v, err) < 0);
        CHECK_STREQ(err, "field 'rate': must be from 1 to 100, got -5");
        CHECK(json_int_field(obj, "burst", 1, 100, 7, &v, err) == 0 && v == 7);
        json_decref(obj);
}

static void utf8_sanitize__replaces_invalid_bytes_only(void)
{
        char s[] = "ok \xc3\xa9 \xff \xe2\x82 \xed\xa0\x80 end";
        utf8_sanitize(s);
        CHECK_STREQ(s, "ok \xc3\xa9 ? ?? ??? end");
}

int main(void)
{
        RUN(json_fields__accepts_a_valid_body);
        RUN(json_fields__missing_field_is_named);
        RUN(json_fields__wrong_type_names_field_and_types);
        RUN(json_fields__unknown_field_is_refused);
        RUN(json_fields__malformed_json_says_where);
        RUN(json_fields__invalid_utf8_and_nul_are_refused);
        RUN(json_fields__duplicate_keys_are_refused);
        RUN(json_fields__non_object_body_is_refused);
        RUN(json_fields__empty_body_counts_as_object_only_when_allowed);
        RUN(json_fields__integer_range_is_enforced);
        RUN(utf8_sanitize__replaces_invalid_bytes_only);
        return CHECK_SUMMARY();
}

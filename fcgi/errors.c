#include "errors.h"

const char *error_code_for_status(int status)
{
        switch (status) {
        case 400:
                return "bad_request";
        case 401:
                return "unauthorized";
        case 403:
                return "forbidden";
        case 404:
                return "not_found";
        case 405:
                return "method_not_allowed";
        case 406:
                return "not_acceptable";
        case 409:
                return "conflict";
        case 411:
                return "length_required";
        case 413:
                return "payload_too_large";
        case 415:
                return "unsupported_media_type";
        case 429:
                return "rate_limited";
        case 503:
                return "unavailable";
        default:
                return status >= 500 ? "internal" : "bad_request";
        }
}

const char *http_reason(int status)
{
        switch (status) {
        case 200:
                return "OK";
        case 201:
                return "Created";
        case 202:
                return "Accepted";
        case 204:
                return "No Content";
        case 302:
                return "Found";
        case 400:
                return "Bad Request";
        case 401:
                return "Unauthorized";
        case 403:
                return "Forbidden";
        case 404:
                return "Not Found";
        case 405:
                return "Method Not Allowed";
        case 406:
                return "Not Acceptable";
        case 409:
                return "Conflict";
        case 411:
                return "Length Required";
        case 413:
                return "Payload Too Large";
        case 415:
                return "Unsupported Media Type";
        case 429:
                return "Too Many Requests";
        case 500:
                return "Internal Server Error";
        case 502:
                return "Bad Gateway";
        case 503:
                return "Service Unavailable";
        default:
                return "Unknown";
        }
}

static json_t *render_native(int status, const char *code, const char *message, const char *request_id)
{
        (void)status;
        (void)request_id; /* travels in the X-Request-Id header */
        return json_pack("{s:s, s:s}", "error", message, "code", code);
}

const struct error_family error_family_native = {"native", render_native};

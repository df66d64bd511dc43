/* One request from parameters to answer: parse → route → body limit → authenticate and
 * rate-limit → scope → body → handler, then one JSON log line. */
#pragma once

#include "request.h"

/* ctx must have io, redis, cfg and node_id set; everything else is filled here. */
void dispatch_request(struct http_ctx *ctx, char **envp);

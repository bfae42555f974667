/*
 * Start and stop of the gRPC library. The core's own log lines (handshake failures and
 * the like) are routed into log/ so that stderr stays one JSON object per line, which is
 * what collectors and the tests read.
 */
#include <grpc/support/log.h>

#include "internal.h"
#include "log.h"

static void core_log(gpr_log_func_args *args)
{
	enum log_level level = args->severity == GPR_LOG_SEVERITY_ERROR ? LOG_WARN :
			       args->severity == GPR_LOG_SEVERITY_INFO	? LOG_INFO :
									  LOG_DEBUG;

	log_write(level, args->message, "source", "%s", "grpc", "file", "%s",
		  args->file ? args->file : "", "line", "%d", args->line, NULL);
}

void rpc_init(void)
{
	gpr_set_log_function(core_log);
	grpc_init();
}

void rpc_fini(void)
{
	grpc_shutdown();
}

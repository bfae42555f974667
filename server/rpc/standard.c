/*
 * The standard services every gRPC tool expects: grpc.health.v1.Health (Check and Watch,
 * overall under "" and per registered service) and server reflection, v1 and v1alpha
 * (identical wire messages, so one set of C types and one handler serve both).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "health.pb-c.h"
#include "reflection.h"
#include "reflection.pb-c.h"

#include "internal.h"

enum {
	SERVING = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING,
	NOT_SERVING = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING,
	SERVICE_UNKNOWN = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVICE_UNKNOWN,
};

void rpc_server_set_health(struct rpc_server *s, const char *service, bool serving)
{
	size_t i;

	pthread_mutex_lock(&s->lock);
	for (i = 0; i < s->n_health; i++)
		if (strcmp(s->health[i].service, service) == 0)
			break;
	if (i == s->n_health) {
		s->health = realloc(s->health, (i + 1) * sizeof(*s->health));
		if (!s->health)
			abort();
		s->health[i].service = strdup(service);
		if (!s->health[i].service)
			abort();
		s->health[i].serving = !serving; /* so that the change below is seen */
		s->n_health++;
	}
	if (atomic_load(&s->shutting_down))
		serving = false;
	if (s->health[i].serving != serving) {
		s->health[i].serving = serving;
		s->version++;
		pthread_cond_broadcast(&s->cond);
	}
	pthread_mutex_unlock(&s->lock);
}

struct rpc_health_entry *rpc_health_free(struct rpc_health_entry *entries, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(entries[i].service);
	free(entries);
	return NULL;
}

/* The status of a service name; SERVICE_UNKNOWN when it was never registered. */
static int health_status(struct rpc_server *s, const char *service, unsigned long *ret_version)
{
	int status = SERVICE_UNKNOWN;

	pthread_mutex_lock(&s->lock);
	for (size_t i = 0; i < s->n_health; i++)
		if (strcmp(s->health[i].service, service) == 0)
			status = s->health[i].serving ? SERVING : NOT_SERVING;
	*ret_version = s->version;
	pthread_mutex_unlock(&s->lock);
	return status;
}

static Grpc__Health__V1__HealthCheckResponse *health_reply(struct rpc_call *call, int status)
{
	Grpc__Health__V1__HealthCheckResponse *resp = (void *)rpc_call_new_message(
		call, &grpc__health__v1__health_check_response__descriptor);

	resp->status = (Grpc__Health__V1__HealthCheckResponse__ServingStatus)status;
	return resp;
}

static int health_check(struct rpc_call *call, const ProtobufCMessage *msg,
			ProtobufCMessage **ret_resp, void *user)
{
	const Grpc__Health__V1__HealthCheckRequest *req = (const void *)msg;
	unsigned long version;
	int status = health_status(call->server, req->service, &version);

	if (status == SERVICE_UNKNOWN)
		return rpc_call_error(call, RPC_NOT_FOUND, "unknown service \"%s\"", req->service);
	*ret_resp = &health_reply(call, status)->base;
	return 0;
}

/* Sends the status now and on every change, until the client goes or the server stops. */
static int health_watch(struct rpc_call *call, const ProtobufCMessage *msg, void *user)
{
	const Grpc__Health__V1__HealthCheckRequest *req = (const void *)msg;
	unsigned long version;
	int status = health_status(call->server, req->service, &version), last = -1;

	for (;;) {
		if (status != last) {
			if (rpc_call_send(call, &health_reply(call, status)->base) < 0)
				return -ECANCELED;
			last = status;
		}
		if (rpc_call_wait(call, 1000)) {
			if (rpc_call_cancelled(call))
				return -ECANCELED;
			/* Shutting down: tell the watcher, then end the stream. */
			if (last != NOT_SERVING)
				rpc_call_send(call, &health_reply(call, NOT_SERVING)->base);
			return rpc_call_error(call, RPC_UNAVAILABLE, "server is shutting down");
		}
		status = health_status(call->server, req->service, &version);
	}
}

int rpc_health_register(struct rpc_server *s)
{
	static const struct rpc_method_handler handlers[] = {
		{ .unary = health_check, .inline_ok = true },
		{ .stream = health_watch },
	};
	const ProtobufCServiceDescriptor *d = &grpc__health__v1__health__descriptor;

	/* protoc-c orders methods by name: Check, Watch. */
	if (d->n_methods != 2 || strcmp(d->methods[0].name, "Check") ||
	    strcmp(d->methods[1].name, "Watch"))
		return -EPROTO;
	return rpc_server_add_service(s, d, handlers, NULL);
}

static void *arena_alloc(void *ctx, size_t n)
{
	return rpc_call_alloc(ctx, n);
}

static int reflection_info(struct rpc_call *call, const ProtobufCMessage *msg,
			   ProtobufCMessage **ret_resp, void *user)
{
	struct rpc_server *s = call->server;
	Grpc__Reflection__V1__ServerReflectionResponse *resp = NULL;
	int r;

	r = rpc_reflection_answer(s->descset, s->services, s->n_services, (const void *)msg,
				  arena_alloc, call, &resp);
	if (r < 0)
		return r;
	*ret_resp = &resp->base;
	return 0;
}

int rpc_reflection_register(struct rpc_server *s)
{
	static const struct rpc_method_handler handler = { .bidi = reflection_info };
	const ProtobufCMessageDescriptor *in = &grpc__reflection__v1__server_reflection_request__descriptor;
	const ProtobufCMessageDescriptor *out = &grpc__reflection__v1__server_reflection_response__descriptor;
	int r;

	r = rpc_server_add_method(s, "grpc.reflection.v1.ServerReflection", "ServerReflectionInfo",
				  in, out, &handler, NULL);
	if (r < 0)
		return r;
	return rpc_server_add_method(s, "grpc.reflection.v1alpha.ServerReflection",
				     "ServerReflectionInfo", in, out, &handler, NULL);
}

#pragma once
/*
 * app-ready: the PostgreSQL readiness check of /readyz. Registered by app_metrics_register
 * with http_server_add_ready(h, "postgres", app_db_ready, db).
 */
#include <stdbool.h>
#include <stddef.h>

/*
 * A readiness check (http_ready_fn) for db (a struct db *): db_ping within 800 ms. False,
 * with the reason in why, when PostgreSQL refuses, drops the connection, or does not answer
 * in that time ("PostgreSQL did not answer within 800 ms", "PostgreSQL has not answered for
 * 6.2 s"); true when it answers, and also when every connection stays leased that long
 * while none has waited that long for an answer (a busy pool is a working database: its
 * calls report their own errors, and a loaded replica must not leave the load balancer for
 * being busy).
 */
bool app_db_ready(void *db, char *why, size_t len);

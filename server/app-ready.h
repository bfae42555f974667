#pragma once
/*
 * app-ready: the PostgreSQL readiness check of /readyz. Registered by app_metrics_register
 * with http_server_add_ready(h, "postgres", app_db_ready, db).
 */
#include <stdbool.h>

/*
 * A readiness check (http_ready_fn) for db (a struct db *): leases a connection for up to
 * a second and runs SELECT 1. False when PostgreSQL refuses or drops the connection; true
 * when it answers, and also when every connection stays leased for that second (a busy
 * pool is a working database: its calls report their own errors, and a loaded replica
 * must not leave the load balancer for being busy).
 */
bool app_db_ready(void *db);

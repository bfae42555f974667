/*
 * guard-metrics.c: the guard's part of /metrics and /readyz. Families (Prometheus text
 * format; `promtool check metrics` clean):
 *   trstctl_egress_guard_trips_total{hook}        kernel denials per hook (tripwire apart)
 *   trstctl_egress_guard_tripwire_hits_total      tripwire connects refused
 *   trstctl_egress_guard_armed                    1 when the kernel guard is proven armed
 *   trstctl_egress_guard_userspace_trips_total{client}  in-process refusals by client
 *                                                 (postgres, nats, http)
 *   trstctl_egress_guard_events_dropped_total     denials the ring buffer had no room for
 *   trstctl_egress_guard_enforcer{enforcer}       1 for the enforcer in force
 * The same numbers as Guard.GetStatus, read from the kernel at each scrape. /readyz also
 * carries the guard's note (guard_run_note): in userspace enforcement it says that only
 * the server's own clients are checked.
 */
#include <stdio.h>

#include "guard.h"
#include "http.h"

static int guard_metrics(struct http_metrics *m, void *arg)
{
	struct guard_run_status st;
	char labels[64];
	int ret, i;

	ret = guard_run_status(arg, &st);
	if (ret < 0)
		return ret;
	http_metrics_family(m, "trstctl_egress_guard_trips_total", "counter",
			    "Outbound connections refused by the kernel egress guard, by hook "
			    "(tripwire hits excluded).");
	for (i = 0; i < GUARD_RUN_HOOKS; i++) {
		snprintf(labels, sizeof(labels), "hook=\"%s\"", guard_run_hook_name(i));
		http_metrics_sample(m, "trstctl_egress_guard_trips_total", labels,
				    st.trips_by_hook[i]);
	}
	http_metrics_family(m, "trstctl_egress_guard_tripwire_hits_total", "counter",
			    "Tripwire connects refused by the kernel egress guard.");
	http_metrics_sample(m, "trstctl_egress_guard_tripwire_hits_total", NULL,
			    st.tripwire_hits);
	http_metrics_family(m, "trstctl_egress_guard_armed", "gauge",
			    "1 when the kernel egress guard is attached and refused the tripwire.");
	http_metrics_sample(m, "trstctl_egress_guard_armed", NULL, st.armed);
	http_metrics_family(m, "trstctl_egress_guard_userspace_trips_total", "counter",
			    "Outbound connections of the server's own clients refused in the "
			    "process by the egress policy, by client.");
	for (i = 0; i < GUARD_CLIENTS; i++) {
		snprintf(labels, sizeof(labels), "client=\"%s\"", guard_client_name(i));
		http_metrics_sample(m, "trstctl_egress_guard_userspace_trips_total", labels,
				    st.userspace_trips_by_client[i]);
	}
	http_metrics_family(m, "trstctl_egress_guard_events_dropped_total", "counter",
			    "Denial records lost because the kernel ring buffer was full.");
	http_metrics_sample(m, "trstctl_egress_guard_events_dropped_total", NULL,
			    st.events_dropped);
	http_metrics_family(m, "trstctl_egress_guard_enforcer", "gauge",
			    "The egress enforcer in force (ebpf, userspace or off) has the value 1.");
	for (i = GUARD_RUN_OFF; i <= GUARD_RUN_EBPF; i++) {
		snprintf(labels, sizeof(labels), "enforcer=\"%s\"", guard_run_mode_name(i));
		http_metrics_sample(m, "trstctl_egress_guard_enforcer", labels,
				    st.mode == (enum guard_run_mode)i);
	}
	return 0;
}

static bool guard_ready(void *arg, char *why, size_t len)
{
	(void)why; /* the guard logs which pin is missing */
	(void)len;
	return guard_run_ready(arg);
}

static const char *guard_note(void *arg)
{
	return guard_run_note(arg);
}

int guard_metrics_register(struct http_server *h, struct guard_run *g)
{
	int ret = http_server_add_metrics(h, guard_metrics, g);

	if (ret >= 0)
		ret = http_server_add_ready(h, "guard", guard_ready, g);
	return ret < 0 ? ret : http_server_add_note(h, "guard", guard_note, g);
}

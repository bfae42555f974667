/*
 * The identities this server knows, for issuance without a read (a change_guess): an
 * identity's names, addresses, key type, TTL and kind never change after it is created,
 * and its state and current serial are checked again under the row lock by the issuance
 * hook (ca_store_issue_hook: the identity must still be in `from` with old_serial). So a
 * cached copy is only ever a guess: when another server (or call) moved the identity on,
 * the hook refuses the issuance, nothing is written, and the service drops the entry and
 * does the issuance again from a fresh read (which also answers a retried request_id).
 * Entries are added when this server creates an identity, replaced when it issues,
 * dropped on any other transition. This file holds how an identity is copied in and out.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ca-internal.h"

/* A deep copy of src without its certificate. */
static int ident_copy(void *dst_v, const void *src_v)
{
	struct ca_identity *dst = dst_v;
	const struct ca_identity *src = src_v;

	*dst = *src;
	dst->cert = NULL;
	dst->name = NULL;
	dst->dns_names = dst->ip_addresses = NULL;
	dst->n_dns_names = dst->n_ip_addresses = 0;
	dst->name = strdup(src->name ? src->name : "");
	if (!dst->name || ca_strv_dup((const char *const *)src->dns_names, src->n_dns_names,
				      &dst->dns_names) < 0)
		goto fail;
	dst->n_dns_names = src->n_dns_names;
	if (ca_strv_dup((const char *const *)src->ip_addresses, src->n_ip_addresses,
			&dst->ip_addresses) < 0)
		goto fail;
	dst->n_ip_addresses = src->n_ip_addresses;
	return 0;
fail:
	ca_identity_clear(dst);
	return -ENOMEM;
}

static void ident_clear(void *v)
{
	ca_identity_clear(v);
}

const struct change_guess_ops ca_ident_guess_ops = {
	.size = sizeof(struct ca_identity),
	.copy = ident_copy,
	.clear = ident_clear,
};

/*
 * The metadata this server last wrote for each secret (after a create or a rotation), so
 * that the next rotation here can start without reading the row: a secret's creation time
 * and labels never change, and its current version and liveness are checked again under
 * the row lock by the rotation hook (secrets_rotate.c). A guess another server made stale
 * only costs a refused round: the rotation then reads the row and tries again (the change
 * room's change_guess_run). Every other change on this server (delete, recover, destroy)
 * drops the name. The cache is a change_guess; this file holds how metadata is copied.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "secrets-internal.h"

/* A deep copy of src (labels included). */
static int meta_copy(void *dst_v, const void *src_v)
{
	struct secrets_meta *dst = dst_v;
	const struct secrets_meta *src = src_v;

	*dst = *src;
	dst->labels = NULL;
	dst->n_labels = 0;
	if (!src->n_labels)
		return 0;
	dst->labels = calloc(src->n_labels, sizeof(*dst->labels));
	if (!dst->labels)
		return -ENOMEM;
	for (size_t i = 0; i < src->n_labels; i++) {
		dst->labels[i].key = strdup(src->labels[i].key);
		dst->labels[i].value = strdup(src->labels[i].value);
		dst->n_labels = i + 1;
		if (!dst->labels[i].key || !dst->labels[i].value) {
			secrets_meta_clear(dst);
			return -ENOMEM;
		}
	}
	return 0;
}

static void meta_clear(void *v)
{
	secrets_meta_clear(v);
}

const struct change_guess_ops secrets_guess_ops = {
	.size = sizeof(struct secrets_meta),
	.copy = meta_copy,
	.clear = meta_clear,
};

void secrets_guess_put(struct secrets *s, const char *tenant, const struct secrets_meta *m)
{
	change_guess_put(s->guess, tenant, m->name, m);
}

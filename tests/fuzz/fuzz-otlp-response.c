/*
 * libFuzzer target for the answer of an OpenTelemetry collector (otel_rejected,
 * server/otel/encode.c): the body of a 2xx answer to an OTLP/HTTP export is the only
 * outside input the exporter reads, an Export*ServiceResponse whose partial_success says how
 * many items were rejected. Both signals' readers get the input and must return a count
 * between 0 and the number of items sent, whatever the bytes.
 */
#include <stdint.h>
#include <stdlib.h>

#include "otel-internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const size_t sent[] = { 0, 1, 512 };

	for (int s = 0; s < OTEL_SIGNALS; s++)
		for (size_t i = 0; i < sizeof(sent) / sizeof(sent[0]); i++)
			if (otel_rejected((enum otel_signal)s, data, size, sent[i]) > sent[i])
				abort();
	return 0;
}

#pragma once
/*
 * Test helper shared by test-descset.c and test-reflection.c: builds a small
 * FileDescriptorSet in memory with what the real trstctl set lacks (a top-level enum,
 * nested messages, proto2 extensions at file and message scope, a missing dependency, a
 * duplicate definition) and serializes it with protoc-c. Included by tests only.
 */
#include <stdint.h>
#include <stdlib.h>

#include "descriptor.pb-c.h"

/*
 * a.proto   package t.a: message Outer { message Inner {} } ; enum Color { RED = 0; }
 * b.proto   package t.b, imports a.proto and missing.proto:
 *           extend t.a.Outer { optional int32 ext_b = 100; }
 *           message Holder { extend t.a.Outer { optional int32 ext_c = 101; } }
 *           service Svc { rpc Up(t.a.Outer) returns (stream t.a.Outer); }
 * c.proto   package t.a again: message Outer (a duplicate; a.proto must win)
 * Returns a malloc'd buffer (free it) and sets *ret_len.
 */
static inline uint8_t *synth_descset(size_t *ret_len)
{
	Google__Protobuf__FileDescriptorSet set = GOOGLE__PROTOBUF__FILE_DESCRIPTOR_SET__INIT;
	Google__Protobuf__FileDescriptorProto fa = GOOGLE__PROTOBUF__FILE_DESCRIPTOR_PROTO__INIT,
					      fb = GOOGLE__PROTOBUF__FILE_DESCRIPTOR_PROTO__INIT,
					      fc = GOOGLE__PROTOBUF__FILE_DESCRIPTOR_PROTO__INIT;
	Google__Protobuf__DescriptorProto outer = GOOGLE__PROTOBUF__DESCRIPTOR_PROTO__INIT,
					  inner = GOOGLE__PROTOBUF__DESCRIPTOR_PROTO__INIT,
					  holder = GOOGLE__PROTOBUF__DESCRIPTOR_PROTO__INIT,
					  dup = GOOGLE__PROTOBUF__DESCRIPTOR_PROTO__INIT;
	Google__Protobuf__DescriptorProto__ExtensionRange range =
		GOOGLE__PROTOBUF__DESCRIPTOR_PROTO__EXTENSION_RANGE__INIT;
	Google__Protobuf__EnumDescriptorProto color = GOOGLE__PROTOBUF__ENUM_DESCRIPTOR_PROTO__INIT;
	Google__Protobuf__EnumValueDescriptorProto red =
		GOOGLE__PROTOBUF__ENUM_VALUE_DESCRIPTOR_PROTO__INIT;
	Google__Protobuf__FieldDescriptorProto
		ext_b = GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__INIT,
		ext_c = GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__INIT;
	Google__Protobuf__ServiceDescriptorProto svc =
		GOOGLE__PROTOBUF__SERVICE_DESCRIPTOR_PROTO__INIT;
	Google__Protobuf__MethodDescriptorProto up =
		GOOGLE__PROTOBUF__METHOD_DESCRIPTOR_PROTO__INIT;
	Google__Protobuf__DescriptorProto *a_msgs[] = { &outer }, *nested[] = { &inner },
					  *b_msgs[] = { &holder }, *c_msgs[] = { &dup };
	Google__Protobuf__DescriptorProto__ExtensionRange *ranges[] = { &range };
	Google__Protobuf__EnumDescriptorProto *enums[] = { &color };
	Google__Protobuf__EnumValueDescriptorProto *values[] = { &red };
	Google__Protobuf__FieldDescriptorProto *b_exts[] = { &ext_b }, *h_exts[] = { &ext_c };
	Google__Protobuf__ServiceDescriptorProto *svcs[] = { &svc };
	Google__Protobuf__MethodDescriptorProto *methods[] = { &up };
	Google__Protobuf__FileDescriptorProto *files[] = { &fa, &fb, &fc };
	char *deps[] = { "a.proto", "missing.proto" };
	uint8_t *buf;

	inner.name = "Inner";
	range.has_start = range.has_end = 1;
	range.start = 100;
	range.end = 200;
	outer.name = "Outer";
	outer.n_nested_type = 1;
	outer.nested_type = nested;
	outer.n_extension_range = 1;
	outer.extension_range = ranges;
	red.name = "RED";
	red.has_number = 1;
	color.name = "Color";
	color.n_value = 1;
	color.value = values;
	fa.name = "a.proto";
	fa.package = "t.a";
	fa.n_message_type = 1;
	fa.message_type = a_msgs;
	fa.n_enum_type = 1;
	fa.enum_type = enums;

	ext_b.name = "ext_b";
	ext_b.has_number = 1;
	ext_b.number = 100;
	ext_b.extendee = ".t.a.Outer";
	ext_c = ext_b;
	ext_c.name = "ext_c";
	ext_c.number = 101;
	holder.name = "Holder";
	holder.n_extension = 1;
	holder.extension = h_exts;
	up.name = "Up";
	up.input_type = up.output_type = ".t.a.Outer";
	up.has_server_streaming = up.server_streaming = 1;
	svc.name = "Svc";
	svc.n_method = 1;
	svc.method = methods;
	fb.name = "b.proto";
	fb.package = "t.b";
	fb.n_dependency = 2;
	fb.dependency = deps;
	fb.n_message_type = 1;
	fb.message_type = b_msgs;
	fb.n_extension = 1;
	fb.extension = b_exts;
	fb.n_service = 1;
	fb.service = svcs;

	dup.name = "Outer";
	fc.name = "c.proto";
	fc.package = "t.a";
	fc.n_message_type = 1;
	fc.message_type = c_msgs;

	set.n_file = 3;
	set.file = files;
	*ret_len = google__protobuf__file_descriptor_set__get_packed_size(&set);
	buf = malloc(*ret_len);
	if (buf)
		google__protobuf__file_descriptor_set__pack(&set, buf);
	return buf;
}

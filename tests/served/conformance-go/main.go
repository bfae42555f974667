// Command trstctl-conformance is the Go client's driver of the conformance script
// (tests/served/conformance.py): trstctl.Dial and the generated trstctlv1 types, looked
// up by the method's name in the protobuf registry. It reads one step per line on stdin,
// {"method": "/trstctl.v1.CA/CreateOwner", "request": {...proto3 JSON...}}, and writes one
// line per step: {"code": "OK", "message": "...", "reply": {...proto3 JSON...}}.
//
//	trstctl-conformance -addr HOST:PORT -ca-file FILE -token-file FILE
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"trstctl.dev/trstctl/clients/go/trstctl"
	_ "trstctl.dev/trstctl/clients/go/trstctl/v1" // registers the API's types
)

// codeNames are the canonical gRPC status names, by code.
var codeNames = []string{"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT",
	"DEADLINE_EXCEEDED", "NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED",
	"RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE",
	"UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED"}

type step struct {
	Method  string          `json:"method"`
	Request json.RawMessage `json:"request"`
}

type result struct {
	Code    string          `json:"code"`
	Message string          `json:"message"`
	Reply   json.RawMessage `json:"reply"`
}

// newMessage makes an empty message of the named type.
func newMessage(name protoreflect.FullName) (proto.Message, error) {
	t, err := protoregistry.GlobalTypes.FindMessageByName(name)
	if err != nil {
		return nil, err
	}
	return t.New().Interface(), nil
}

// call runs one step on conn.
func call(conn *grpc.ClientConn, s step) result {
	res := result{Code: "LOCAL_ERROR", Reply: json.RawMessage("null")}
	i := strings.LastIndex(s.Method, "/")
	if !strings.HasPrefix(s.Method, "/") || i < 1 {
		res.Message = "bad method " + s.Method
		return res
	}
	d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(s.Method[1:i]))
	sd, ok := d.(protoreflect.ServiceDescriptor)
	if err != nil || !ok {
		res.Message = "no service " + s.Method[1:i]
		return res
	}
	md := sd.Methods().ByName(protoreflect.Name(s.Method[i+1:]))
	if md == nil {
		res.Message = "no method " + s.Method
		return res
	}
	req, err := newMessage(md.Input().FullName())
	if err == nil {
		err = protojson.Unmarshal(s.Request, req)
	}
	resp, err2 := newMessage(md.Output().FullName())
	if err != nil || err2 != nil {
		res.Message = fmt.Sprint(err, err2)
		return res
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := conn.Invoke(ctx, s.Method, req, resp); err != nil {
		st := status.Convert(err)
		res.Code = fmt.Sprint(st.Code())
		if int(st.Code()) < len(codeNames) {
			res.Code = codeNames[st.Code()]
		}
		res.Message = st.Message()
		return res
	}
	b, err := protojson.MarshalOptions{EmitUnpopulated: true}.Marshal(resp)
	if err != nil {
		res.Message = err.Error()
		return res
	}
	res.Code, res.Reply = "OK", b
	return res
}

func main() {
	addr := flag.String("addr", "", "HOST:PORT")
	caFile := flag.String("ca-file", "", "the CA bundle that verifies the server")
	tokenFile := flag.String("token-file", "", "the API token")
	flag.Parse()
	token, err := trstctl.ReadTokenFile(*tokenFile)
	if err != nil || *addr == "" {
		fmt.Fprintln(os.Stderr, "usage: trstctl-conformance -addr HOST:PORT -ca-file FILE -token-file FILE")
		os.Exit(2)
	}
	conn, err := trstctl.Dial(context.Background(), *addr, trstctl.Options{Token: token, CAFile: *caFile})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer conn.Close()
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 16<<20)
	out := json.NewEncoder(os.Stdout)
	for in.Scan() {
		if strings.TrimSpace(in.Text()) == "" {
			continue
		}
		var s step
		res := result{Code: "LOCAL_ERROR", Reply: json.RawMessage("null")}
		if err := json.Unmarshal(in.Bytes(), &s); err != nil {
			res.Message = err.Error()
			out.Encode(res)
			continue
		}
		res = call(conn, s)
		out.Encode(res)
	}
}

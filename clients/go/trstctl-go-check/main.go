// Command trstctl-go-check calls a running trstctl server through the Go client that the
// build generates from api/trstctl/v1 (protoc-gen-go + protoc-gen-go-grpc) and checks each
// answer: Health/Check is SERVING, CA GetCABundle returns a PEM certificate, CA CreateOwner
// then GetOwner returns the same owner, Audit VerifyChain is ok, and a call without a
// bearer token is refused with UNAUTHENTICATED. It connects with TLS, trusting only the
// certificate file given by -ca (the server's internal certificate, pinned). Each check
// prints one line; the exit status is 1 when any check failed, 2 on bad arguments.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"flag"
	"fmt"
	"io/ioutil"
	"os"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	trstctlv1 "trstctl/api/trstctl/v1"
)

type checker struct {
	failed int
	passed int
}

func (c *checker) run(name string, fn func() (string, error)) {
	msg, err := fn()
	if err != nil {
		c.failed++
		fmt.Printf("FAIL %s: %v\n", name, err)
		return
	}
	c.passed++
	fmt.Printf("ok   %s: %s\n", name, msg)
}

func readToken(path string) (string, error) {
	b, err := ioutil.ReadFile(path)
	if err != nil {
		return "", err
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", fmt.Errorf("%s: empty token file", path)
	}
	return tok, nil
}

func pinnedCreds(caFile, serverName string) (credentials.TransportCredentials, error) {
	b, err := ioutil.ReadFile(caFile)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("%s: no PEM certificate in it", caFile)
	}
	return credentials.NewTLS(&tls.Config{
		RootCAs:    pool,
		ServerName: serverName,
		MinVersion: tls.VersionTLS12,
	}), nil
}

func main() {
	addr := flag.String("addr", "", "server address host:port (required)")
	caFile := flag.String("ca", "", "PEM certificate to trust (the server's, pinned; required)")
	tokenFile := flag.String("token-file", "", "file holding the bearer token (required)")
	serverName := flag.String("server-name", "localhost", "name to verify in the certificate")
	owner := flag.String("owner", "go-client", "name of the owner to create")
	timeout := flag.Duration("timeout", 10*time.Second, "deadline of each call")
	flag.Parse()
	if *addr == "" || *caFile == "" || *tokenFile == "" || flag.NArg() != 0 {
		fmt.Fprintln(os.Stderr, "usage: trstctl-go-check -addr HOST:PORT -ca CERT.pem "+
			"-token-file FILE [-server-name NAME] [-owner NAME] [-timeout D]")
		os.Exit(2)
	}
	token, err := readToken(*tokenFile)
	if err != nil {
		fmt.Fprintf(os.Stderr, "trstctl-go-check: token: %v\n", err)
		os.Exit(2)
	}
	creds, err := pinnedCreds(*caFile, *serverName)
	if err != nil {
		fmt.Fprintf(os.Stderr, "trstctl-go-check: -ca: %v\n", err)
		os.Exit(2)
	}
	dctx, cancel := context.WithTimeout(context.Background(), *timeout)
	conn, err := grpc.DialContext(dctx, *addr, grpc.WithTransportCredentials(creds),
		grpc.WithBlock())
	cancel()
	if err != nil {
		fmt.Printf("FAIL connect %s: %v\n", *addr, err)
		os.Exit(1)
	}
	defer conn.Close()

	// authed gives a context with the deadline and, when withToken, the bearer token.
	authed := func(withToken bool) (context.Context, context.CancelFunc) {
		ctx, cancel := context.WithTimeout(context.Background(), *timeout)
		if withToken {
			ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
		}
		return ctx, cancel
	}
	health := healthpb.NewHealthClient(conn)
	ca := trstctlv1.NewCAClient(conn)
	audit := trstctlv1.NewAuditClient(conn)
	var c checker

	c.run("Health/Check", func() (string, error) {
		ctx, cancel := authed(false)
		defer cancel()
		r, err := health.Check(ctx, &healthpb.HealthCheckRequest{})
		if err != nil {
			return "", err
		}
		if r.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			return "", fmt.Errorf("status %s, want SERVING", r.GetStatus())
		}
		return r.GetStatus().String(), nil
	})

	c.run("CA/GetCABundle", func() (string, error) {
		ctx, cancel := authed(true)
		defer cancel()
		r, err := ca.GetCABundle(ctx, &trstctlv1.GetCABundleRequest{})
		if err != nil {
			return "", err
		}
		blk, _ := pem.Decode([]byte(r.GetPem()))
		if blk == nil || blk.Type != "CERTIFICATE" {
			return "", fmt.Errorf("no PEM certificate in the bundle (%d bytes)",
				len(r.GetPem()))
		}
		cert, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return "", fmt.Errorf("bundle certificate: %v", err)
		}
		if !cert.IsCA {
			return "", fmt.Errorf("bundle certificate %q is not a CA", cert.Subject)
		}
		return fmt.Sprintf("CA %q", cert.Subject.String()), nil
	})

	var created *trstctlv1.Owner
	c.run("CA/CreateOwner", func() (string, error) {
		ctx, cancel := authed(true)
		defer cancel()
		r, err := ca.CreateOwner(ctx, &trstctlv1.CreateOwnerRequest{
			Kind: "user", Name: *owner, Email: *owner + "@test.invalid",
		})
		if err != nil {
			return "", err
		}
		if r.GetId() == "" || r.GetName() != *owner || r.GetKind() != "user" {
			return "", fmt.Errorf("unexpected owner %v", r)
		}
		created = r
		return fmt.Sprintf("id %s name %s", r.GetId(), r.GetName()), nil
	})

	c.run("CA/GetOwner", func() (string, error) {
		if created == nil {
			return "", fmt.Errorf("no owner was created")
		}
		ctx, cancel := authed(true)
		defer cancel()
		r, err := ca.GetOwner(ctx, &trstctlv1.GetOwnerRequest{Id: created.GetId()})
		if err != nil {
			return "", err
		}
		if r.GetId() != created.GetId() || r.GetName() != created.GetName() ||
			r.GetEmail() != created.GetEmail() || r.GetKind() != created.GetKind() {
			return "", fmt.Errorf("got %v, want %v", r, created)
		}
		return fmt.Sprintf("id %s name %s", r.GetId(), r.GetName()), nil
	})

	c.run("Audit/VerifyChain", func() (string, error) {
		ctx, cancel := authed(true)
		defer cancel()
		r, err := audit.VerifyChain(ctx, &trstctlv1.VerifyChainRequest{})
		if err != nil {
			return "", err
		}
		if !r.GetOk() {
			return "", fmt.Errorf("chain not ok: first bad %d: %s",
				r.GetFirstBadSequence(), r.GetDetail())
		}
		if r.GetChecked() < 1 {
			return "", fmt.Errorf("ok but checked %d records after a CreateOwner",
				r.GetChecked())
		}
		return fmt.Sprintf("ok, %d records", r.GetChecked()), nil
	})

	c.run("CA/ListOwners without a token", func() (string, error) {
		ctx, cancel := authed(false)
		defer cancel()
		_, err := ca.ListOwners(ctx, &trstctlv1.ListOwnersRequest{})
		if err == nil {
			return "", fmt.Errorf("answered OK, want UNAUTHENTICATED")
		}
		if status.Code(err) != codes.Unauthenticated {
			return "", fmt.Errorf("got %v, want UNAUTHENTICATED", err)
		}
		return status.Code(err).String(), nil
	})

	fmt.Printf("=== trstctl-go-check: %d passed, %d failed\n", c.passed, c.failed)
	if c.failed > 0 {
		os.Exit(1)
	}
}

// Command trstctl-example is a program outside the trstctl tree that uses the Go client
// module (trstctl.dev/trstctl/clients/go): trstctl.Dial with a bearer token and the
// server's CA bundle, then the generated clients. It checks each answer: Health/Check is
// SERVING; CA GetCABundle returns a CA certificate; CreateOwner then GetOwner return the
// same owner; CreateIdentity then IssueCertificate (the server generates the key) return
// a certificate that chains to the bundle, names the identity's DNS name and matches its
// private key; Audit VerifyChain is ok; a connection without a token is refused with
// UNAUTHENTICATED. Each check prints one line; the exit status is 1 when any check
// failed, 2 on bad arguments. tests/served/test_go_client.py builds it offline from a
// copy and runs it; docs/api.md shows how.
package main

import (
	"context"
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"flag"
	"fmt"
	"os"
	"time"

	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"trstctl.dev/trstctl/clients/go/trstctl"
	trstctlv1 "trstctl.dev/trstctl/clients/go/trstctl/v1"
)

type checker struct {
	failed, passed int
	timeout        time.Duration
}

// run runs one check with a fresh deadline and prints its line.
func (c *checker) run(name string, fn func(ctx context.Context) (string, error)) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	msg, err := fn(ctx)
	if err != nil {
		c.failed++
		fmt.Printf("FAIL %s: %v\n", name, err)
		return
	}
	c.passed++
	fmt.Printf("ok   %s: %s\n", name, msg)
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: trstctl-example -addr HOST:PORT -token-file FILE "+
		"[-ca CERT.pem] [-server-name NAME] [-plaintext] [-name NAME] [-timeout D]")
	os.Exit(2)
}

// firstCert parses the first PEM certificate of s.
func firstCert(s string) (*x509.Certificate, error) {
	blk, _ := pem.Decode([]byte(s))
	if blk == nil || blk.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("no PEM certificate (%d bytes)", len(s))
	}
	return x509.ParseCertificate(blk.Bytes)
}

// checkIssued verifies an issued certificate against the CA bundle and its private key.
func checkIssued(c *trstctlv1.Certificate, bundle, dns string) error {
	leaf, err := firstCert(c.GetPem())
	if err != nil {
		return fmt.Errorf("certificate: %v", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM([]byte(bundle)) {
		return fmt.Errorf("no certificate in the CA bundle")
	}
	inter := x509.NewCertPool()
	inter.AppendCertsFromPEM([]byte(c.GetChainPem()))
	if _, err := leaf.Verify(x509.VerifyOptions{DNSName: dns, Roots: roots,
		Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		return fmt.Errorf("does not verify against the CA bundle: %v", err)
	}
	blk, _ := pem.Decode([]byte(c.GetPrivateKeyPem()))
	if blk == nil {
		return fmt.Errorf("no private key in the reply of a server-generated key")
	}
	key, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return fmt.Errorf("private key: %v", err)
	}
	pub, ok := key.(crypto.Signer)
	if !ok || !leaf.PublicKey.(interface{ Equal(crypto.PublicKey) bool }).Equal(pub.Public()) {
		return fmt.Errorf("the private key does not match the certificate")
	}
	return nil
}

func main() {
	addr := flag.String("addr", "", "server address host:port (required)")
	caFile := flag.String("ca", "", "PEM roots that verify the server (empty: system roots)")
	tokenFile := flag.String("token-file", "", "file holding the bearer token (required)")
	serverName := flag.String("server-name", "", "name to verify in the server certificate")
	plaintext := flag.Bool("plaintext", false, "no TLS (loopback only)")
	name := flag.String("name", "go-example", "name of the owner and identity to create")
	timeout := flag.Duration("timeout", 10*time.Second, "deadline of each call")
	flag.Parse()
	if *addr == "" || *tokenFile == "" || flag.NArg() != 0 {
		usage()
	}
	token, err := trstctl.ReadTokenFile(*tokenFile)
	if err != nil {
		fmt.Fprintf(os.Stderr, "trstctl-example: %v\n", err)
		os.Exit(2)
	}
	opts := trstctl.Options{Token: token, CAFile: *caFile, ServerName: *serverName,
		Plaintext: *plaintext}
	conn, err := trstctl.Dial(context.Background(), *addr, opts)
	if err != nil {
		fmt.Fprintf(os.Stderr, "trstctl-example: %v\n", err)
		os.Exit(2)
	}
	defer conn.Close()
	opts.Token = ""
	anon, err := trstctl.Dial(context.Background(), *addr, opts)
	if err != nil {
		fmt.Fprintf(os.Stderr, "trstctl-example: %v\n", err)
		os.Exit(2)
	}
	defer anon.Close()

	health := healthpb.NewHealthClient(conn)
	ca := trstctlv1.NewCAClient(conn)
	c := checker{timeout: *timeout}
	dns := *name + ".example.internal"

	c.run("Health/Check", func(ctx context.Context) (string, error) {
		r, err := health.Check(ctx, &healthpb.HealthCheckRequest{})
		if err != nil {
			return "", err
		}
		if r.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			return "", fmt.Errorf("status %s, want SERVING", r.GetStatus())
		}
		return r.GetStatus().String(), nil
	})

	var bundle string
	c.run("CA/GetCABundle", func(ctx context.Context) (string, error) {
		r, err := ca.GetCABundle(ctx, &trstctlv1.GetCABundleRequest{})
		if err != nil {
			return "", err
		}
		cert, err := firstCert(r.GetPem())
		if err != nil {
			return "", err
		}
		if !cert.IsCA {
			return "", fmt.Errorf("bundle certificate %q is not a CA", cert.Subject)
		}
		bundle = r.GetPem()
		return fmt.Sprintf("CA %q", cert.Subject.String()), nil
	})

	var owner *trstctlv1.Owner
	c.run("CA/CreateOwner", func(ctx context.Context) (string, error) {
		r, err := ca.CreateOwner(ctx, &trstctlv1.CreateOwnerRequest{
			Kind: "workload", Name: *name, Email: *name + "@example.internal",
			RequestId: "example-owner-" + *name,
		})
		if err != nil {
			return "", err
		}
		if r.GetId() == "" || r.GetName() != *name || r.GetKind() != "workload" {
			return "", fmt.Errorf("unexpected owner %v", r)
		}
		owner = r
		return fmt.Sprintf("id %s name %s", r.GetId(), r.GetName()), nil
	})

	c.run("CA/GetOwner", func(ctx context.Context) (string, error) {
		if owner == nil {
			return "", fmt.Errorf("no owner was created")
		}
		r, err := ca.GetOwner(ctx, &trstctlv1.GetOwnerRequest{Id: owner.GetId()})
		if err != nil {
			return "", err
		}
		if r.GetId() != owner.GetId() || r.GetName() != owner.GetName() ||
			r.GetEmail() != owner.GetEmail() || r.GetKind() != owner.GetKind() {
			return "", fmt.Errorf("got %v, want %v", r, owner)
		}
		return fmt.Sprintf("id %s", r.GetId()), nil
	})

	var ident *trstctlv1.Identity
	c.run("CA/CreateIdentity", func(ctx context.Context) (string, error) {
		if owner == nil {
			return "", fmt.Errorf("no owner was created")
		}
		r, err := ca.CreateIdentity(ctx, &trstctlv1.CreateIdentityRequest{
			Kind: "x509_certificate", Name: *name, OwnerId: owner.GetId(),
			DnsNames: []string{dns}, TtlSeconds: 3600,
		})
		if err != nil {
			return "", err
		}
		if r.GetState() != "requested" {
			return "", fmt.Errorf("state %q, want requested", r.GetState())
		}
		ident = r
		return fmt.Sprintf("id %s state %s", r.GetId(), r.GetState()), nil
	})

	c.run("CA/IssueCertificate", func(ctx context.Context) (string, error) {
		if ident == nil || bundle == "" {
			return "", fmt.Errorf("no identity or no CA bundle")
		}
		r, err := ca.IssueCertificate(ctx, &trstctlv1.IssueCertificateRequest{
			IdentityId: ident.GetId(), TtlSeconds: 3600,
		})
		if err != nil {
			return "", err
		}
		if err := checkIssued(r, bundle, dns); err != nil {
			return "", err
		}
		return fmt.Sprintf("serial %s for %s", r.GetSerial(), dns), nil
	})

	c.run("Audit/VerifyChain", func(ctx context.Context) (string, error) {
		r, err := trstctlv1.NewAuditClient(conn).VerifyChain(ctx, &trstctlv1.VerifyChainRequest{})
		if err != nil {
			return "", err
		}
		if !r.GetOk() || r.GetChecked() < 1 {
			return "", fmt.Errorf("ok %v, %d checked, first bad %d: %s", r.GetOk(),
				r.GetChecked(), r.GetFirstBadSequence(), r.GetDetail())
		}
		return fmt.Sprintf("ok, %d records", r.GetChecked()), nil
	})

	c.run("CA/ListOwners without a token", func(ctx context.Context) (string, error) {
		_, err := trstctlv1.NewCAClient(anon).ListOwners(ctx, &trstctlv1.ListOwnersRequest{})
		if status.Code(err) != codes.Unauthenticated {
			return "", fmt.Errorf("got %v, want UNAUTHENTICATED", err)
		}
		return status.Code(err).String(), nil
	})

	fmt.Printf("=== trstctl-example: %d passed, %d failed\n", c.passed, c.failed)
	if c.failed > 0 {
		os.Exit(1)
	}
}

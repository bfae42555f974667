// Package trstctl connects to a trstctl server. Dial returns a *grpc.ClientConn for the
// generated clients of package trstctlv1 (trstctl.dev/trstctl/clients/go/trstctl/v1) and
// the standard health client:
//
//	conn, err := trstctl.Dial(ctx, "trstctl.internal:8443", trstctl.Options{
//		Token:  token,         // sent as "authorization: Bearer <token>"
//		CAFile: "ca.pem",      // the roots that verify the server's certificate
//	})
//	ca := trstctlv1.NewCAClient(conn)
//
// The token travels only over TLS, or over plaintext to a loopback address (a server with
// TLS disabled, which it allows only on loopback): Dial refuses plaintext to any other
// host rather than send a bearer token in the clear.
package trstctl

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
)

// Options of Dial. The zero value is TLS verified against the system roots, no token.
type Options struct {
	// Token is sent with every call as "authorization: Bearer <Token>"; empty sends
	// none (health and reflection need none).
	Token string
	// CAFile is a PEM bundle of the roots that verify the server's certificate (for the
	// server's internal TLS mode: its ca-bundle.pem, or GetCABundle); empty uses the system roots.
	CAFile string
	// ServerName is the name verified in the server's certificate instead of the host
	// of the address.
	ServerName string
	// CertFile and KeyFile are the client certificate chain and key for a server that
	// asks for one (mTLS); both or neither.
	CertFile string
	KeyFile  string
	// Plaintext dials without TLS; only to a loopback address (localhost, 127.0.0.0/8,
	// ::1). TLS options are rejected with it.
	Plaintext bool
	// DialOptions are appended to the options Dial builds (grpc.WithBlock(), ...).
	DialOptions []grpc.DialOption
}

// bearer is the PerRPCCredentials of a token.
type bearer struct {
	token  string
	secure bool
}

func (b bearer) GetRequestMetadata(ctx context.Context, uri ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + b.token}, nil
}

func (b bearer) RequireTransportSecurity() bool { return b.secure }

// ReadTokenFile returns the token in a file (as the server writes its bootstrap token:
// one line), without surrounding white space. An empty file is an error.
func ReadTokenFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", fmt.Errorf("%s: empty token file", path)
	}
	return tok, nil
}

// isLoopback reports whether the host of addr ("host:port") is a loopback name or address.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func tlsConfig(o Options) (*tls.Config, error) {
	cfg := &tls.Config{ServerName: o.ServerName, MinVersion: tls.VersionTLS12}
	if o.CAFile != "" {
		pem, err := os.ReadFile(o.CAFile)
		if err != nil {
			return nil, fmt.Errorf("CAFile: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("CAFile %s: no PEM certificate in it", o.CAFile)
		}
		cfg.RootCAs = pool
	}
	if (o.CertFile == "") != (o.KeyFile == "") {
		return nil, errors.New("CertFile and KeyFile go together")
	}
	if o.CertFile != "" {
		pair, err := tls.LoadX509KeyPair(o.CertFile, o.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return cfg, nil
}

// Dial connects to the trstctl server at addr ("host:port") as the options say. It does
// not wait for the connection (add grpc.WithBlock() to DialOptions for that): a server
// that cannot be reached or verified shows up as UNAVAILABLE on the first call. The
// caller closes the connection.
func Dial(ctx context.Context, addr string, o Options) (*grpc.ClientConn, error) {
	if addr == "" {
		return nil, errors.New("trstctl.Dial: empty address")
	}
	if strings.ContainsAny(o.Token, " \t\r\n") {
		return nil, errors.New("trstctl.Dial: the token contains white space")
	}
	var opts []grpc.DialOption
	if o.Plaintext {
		if o.CAFile != "" || o.ServerName != "" || o.CertFile != "" || o.KeyFile != "" {
			return nil, errors.New("trstctl.Dial: Plaintext takes no TLS option")
		}
		if !isLoopback(addr) {
			return nil, fmt.Errorf("trstctl.Dial: plaintext only to a loopback address, "+
				"not %s: the bearer token would travel in the clear", addr)
		}
		opts = append(opts, grpc.WithInsecure())
	} else {
		cfg, err := tlsConfig(o)
		if err != nil {
			return nil, fmt.Errorf("trstctl.Dial: %w", err)
		}
		opts = append(opts, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
	}
	if o.Token != "" {
		opts = append(opts, grpc.WithPerRPCCredentials(bearer{o.Token, !o.Plaintext}))
	}
	return grpc.DialContext(ctx, addr, append(opts, o.DialOptions...)...)
}

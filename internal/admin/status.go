package admin

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf8"
)

// DefaultListen is the admin address of the example config, and where
// `prism status` looks when given no address.
const DefaultListen = "127.0.0.1:9901"

// Client reads a running prism's admin API.
type Client struct {
	Base  string // http://host:port
	Token string
	HTTP  *http.Client
}

// NewClient returns a client for the admin listener at addr (host:port or
// a URL).
func NewClient(addr, token string) *Client {
	if !strings.Contains(addr, "://") {
		addr = "http://" + addr
	}
	return &Client{Base: strings.TrimRight(addr, "/"), Token: token, HTTP: &http.Client{Timeout: 10 * time.Second}}
}

// UseTLS makes the client speak https, trusting the PEM CA bundle caFile
// (system roots when empty) and presenting the client certificate
// certFile/keyFile when given.
func (c *Client) UseTLS(caFile, certFile, keyFile string) error {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return err
		}
		tc.RootCAs = x509.NewCertPool()
		if !tc.RootCAs.AppendCertsFromPEM(pem) {
			return fmt.Errorf("no PEM certificate in %s", caFile)
		}
	}
	if certFile != "" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return err
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	c.Base = "https://" + strings.TrimPrefix(strings.TrimPrefix(c.Base, "http://"), "https://")
	c.HTTP.Transport = &http.Transport{TLSClientConfig: tc}
	return nil
}

// Get decodes the JSON answer of path into v.
func (c *Client) Get(ctx context.Context, path string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.Base+path, nil)
	if err != nil {
		return err
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return fmt.Errorf("admin API: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("admin API %s: %s: %s", path, resp.Status, term(strings.TrimSpace(string(b))))
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		return fmt.Errorf("admin API %s: %w", path, err)
	}
	return nil
}

// sessionsShown is how many live sessions `prism status` lists.
const sessionsShown = 20

// PrintStatus writes the picture the dashboard shows — apps, record
// breakdown, log jobs, the oldest live sessions — as text tables.
func (c *Client) PrintStatus(ctx context.Context, w io.Writer) error {
	var s SummaryJSON
	if err := c.Get(ctx, "/api/v1/summary", &s); err != nil {
		return err
	}
	var ss SessionsJSON
	if err := c.Get(ctx, fmt.Sprintf("/api/v1/sessions?limit=%d", sessionsShown), &ss); err != nil {
		return err
	}
	ready := "ready"
	if !s.Ready {
		ready = "NOT READY: " + term(s.NotReady)
	}
	fmt.Fprintf(w, "prism %s, up %s, %s\n\n", term(s.Version), time.Duration(s.UptimeSeconds*float64(time.Second)).Round(time.Second), ready)
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "APP\tPROTO\tLISTEN\tORIGINS\tACTIVE\tSESSIONS\tORIGIN ERRORS\tFROM CLIENT\tFROM ORIGIN")
	for _, a := range s.Apps {
		var origins []string
		for _, o := range a.OriginState {
			origins = append(origins, fmt.Sprintf("%s (%d open)", term(o.Origin), o.Active))
		}
		listen := a.Bound
		if len(listen) == 0 {
			listen = a.Listen
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%d\t%d\t%d\n", term(a.ID), term(a.Protocol), term(strings.Join(listen, ",")),
			strings.Join(origins, ", "), a.Active, a.Started, a.OriginErrors, a.BytesFromClient, a.BytesFromOrigin)
	}
	tw.Flush()
	if len(s.Records) > 0 {
		fmt.Fprintln(w)
		tw = tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "EVENT\tSTATUS\tRECORDS")
		for _, r := range s.Records {
			fmt.Fprintf(tw, "%s\t%d\t%d\n", term(r.Event), r.Status, r.Count)
		}
		tw.Flush()
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "JOB\tDATASET\tEMITTED\tWRITTEN\tDELIVERED\tQUEUED\tDROPPED\tWRITE ERRORS\tDELIVERY LAG")
	for _, j := range s.Jobs {
		delivered, lag, dropped := "-", "-", j.Dropped
		if d := j.Delivery; d != nil {
			delivered = fmt.Sprint(d.Delivered)
			lag = DeliveryLag(d, s.Time).Round(time.Millisecond).String()
			dropped += d.Dropped()
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\t%d\t%d\t%d\t%s\n", term(j.Job), term(j.Dataset), j.Emitted, j.Written, delivered, j.Queued, dropped, j.WriteErrors, lag)
	}
	tw.Flush()
	fmt.Fprintf(w, "\nlive sessions: %d", ss.Matched)
	if ss.Matched > len(ss.Sessions) {
		fmt.Fprintf(w, " (oldest %d shown)", len(ss.Sessions))
	}
	fmt.Fprintln(w)
	if len(ss.Sessions) > 0 {
		tw = tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "SESSION\tAPP\tCLIENT\tORIGIN\tCOUNTRY\tASN\tSNI\tAGE\tFROM CLIENT\tFROM ORIGIN")
		for _, x := range ss.Sessions {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%d\t%d\n", term(x.ID), term(x.App), term(x.Client), term(x.Origin),
				term(dash(x.Country)), x.ASN, term(dash(x.SNI)),
				time.Duration(x.AgeSeconds*float64(time.Second)).Round(time.Second), x.BytesFromClient, x.BytesFromOrigin)
		}
		tw.Flush()
	}
	return nil
}

// term is s safe to print on a terminal: quoted, with escapes, when it
// holds a control or other non-printing character or invalid UTF-8, as is
// otherwise. Some fields come from clients (SNI above all) and the rest
// from the config or the API's answer: printed raw, an escape sequence in
// one could rewrite the operator's screen or title, or a tab or newline
// break the table.
func term(s string) string {
	if utf8.ValidString(s) && strings.IndexFunc(s, func(r rune) bool { return !unicode.IsPrint(r) }) < 0 {
		return s
	}
	return strconv.Quote(s)
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

package logs

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/prismproxy/prism/internal/render"
)

// Usage is the help of `prism logs`.
const Usage = `usage:
  prism logs convert --from D --to D2 [--fields F1,F2] [--output ndjson|csv] [--timestamp-format F] [-o FILE] [--strict] FILE...
  prism logs filter  --from D --filter '<Logpush filter JSON>' [-o FILE] [--strict] FILE...
  prism logs stats   --from D [--json] [--top N] [--strict] FILE...
  prism logs verify  --dataset D [--strict] FILE...

D is spectrum_events, edgeone_l4 or cloudconnexa; D2 any of those or ocsf.
Files are ndjson or CSV, gzip or not; "-" or no FILE reads stdin.
Bad records are reported as FILE:LINE: reason and make the exit status 1.
`

// Main runs `prism logs ARGS` and returns the exit status: 0, 1 when
// records were bad (or verify found problems), 2 for a usage error.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) (code int) {
	if len(args) == 0 {
		fmt.Fprint(stderr, Usage)
		return 2
	}
	cmd := args[0]
	fs := flag.NewFlagSet("prism logs "+cmd, flag.ContinueOnError)
	// What the flag package prints goes to stderr, but for -h (-help,
	// --help): that usage goes to stdout and the exit status is 0.
	var flagOut bytes.Buffer
	fs.SetOutput(&flagOut)
	help := false
	defer func() {
		if help {
			_, _ = stdout.Write(flagOut.Bytes())
			code = 0
			return
		}
		_, _ = stderr.Write(flagOut.Bytes())
	}()
	var c Common
	c.Stdin, c.Diag = stdin, stderr
	fs.BoolVar(&c.Strict, "strict", false, "stop at the first bad record")
	switch cmd {
	case "convert":
		fs.StringVar(&c.From, "from", "", "dataset of the input: "+strings.Join(Datasets, ", "))
		to := fs.String("to", "", "target dataset: "+strings.Join(render.Datasets, ", "))
		fields := fs.String("fields", "", "target fields, comma-separated, in this order (default all)")
		output := fs.String("output", "", "target encoding: ndjson or csv (default: the input's)")
		tsf := fs.String("timestamp-format", "", "spectrum_events timestamps: unixnano, unix or rfc3339 (default: the source's, else unixnano)")
		outFile := fs.String("o", "", "write to FILE instead of stdout")
		if !parse(fs, args[1:], &help) || !need(stderr, cmd, "--from", c.From) || !need(stderr, cmd, "--to", *to) {
			return 2
		}
		c.Files = fs.Args()
		o := ConvertOptions{Common: c, To: *to}
		if *fields != "" {
			o.Fields = strings.Split(*fields, ",")
			for i := range o.Fields {
				o.Fields[i] = strings.TrimSpace(o.Fields[i]) // "Event, Status" as written in a shell
			}
		}
		if *output != "" {
			out, err := render.ParseOutput(*output)
			if err != nil {
				return usageErr(stderr, cmd, err)
			}
			o.Output = &out
		}
		if *tsf != "" {
			f, err := render.ParseTimestampFormat(*tsf)
			if err != nil {
				return usageErr(stderr, cmd, err)
			}
			o.TimestampFormat = &f
		}
		// usage errors before the -o file is touched
		if err := o.check(); err != nil {
			return usageErr(stderr, cmd, err)
		}
		if err := checkOutput(*outFile, &c); err != nil {
			return usageErr(stderr, cmd, err)
		}
		return withOutput(stdout, stderr, *outFile, func(w io.Writer) (Result, error) { return Convert(o, w) })
	case "filter":
		fs.StringVar(&c.From, "from", "", "dataset of the input: "+strings.Join(Datasets, ", "))
		filter := fs.String("filter", "", `Logpush filter, e.g. '{"where":{"key":"Status","operator":"geq","value":400}}'`)
		outFile := fs.String("o", "", "write to FILE instead of stdout")
		if !parse(fs, args[1:], &help) || !need(stderr, cmd, "--from", c.From) || !need(stderr, cmd, "--filter", *filter) {
			return 2
		}
		c.Files = fs.Args()
		if _, err := newDecoder(c.From); err != nil {
			return usageErr(stderr, cmd, err)
		}
		if err := CheckFilter(c.From, *filter); err != nil {
			fmt.Fprintf(stderr, "prism logs filter: filter: %v\n", err)
			return 2
		}
		if err := checkOutput(*outFile, &c); err != nil {
			return usageErr(stderr, cmd, err)
		}
		o := FilterOptions{Common: c, Filter: *filter}
		return withOutput(stdout, stderr, *outFile, func(w io.Writer) (Result, error) { return Filter(o, w) })
	case "stats":
		fs.StringVar(&c.From, "from", "", "dataset of the input: "+strings.Join(Datasets, ", "))
		asJSON := fs.Bool("json", false, "write the report as JSON")
		topN := fs.Int("top", 10, "how many clients, countries and ASNs to list")
		if !parse(fs, args[1:], &help) || !need(stderr, cmd, "--from", c.From) {
			return 2
		}
		c.Files = fs.Args()
		rep, _, err := Stats(StatsOptions{Common: c, Top: *topN, JSON: *asJSON})
		if rep == nil {
			return usageErr(stderr, cmd, err)
		}
		var werr error
		if *asJSON {
			werr = rep.WriteJSON(stdout)
		} else {
			werr = rep.WriteText(stdout)
		}
		if werr != nil {
			fmt.Fprintf(stderr, "prism logs stats: %v\n", werr)
			return 1
		}
		return status(stderr, cmd, err)
	case "verify":
		fs.StringVar(&c.From, "dataset", "", "vendor schema to check against: "+strings.Join(Datasets, ", "))
		if !parse(fs, args[1:], &help) || !need(stderr, cmd, "--dataset", c.From) {
			return 2
		}
		c.Files = fs.Args()
		res, err := Verify(VerifyOptions{Common: c})
		if err == nil {
			fmt.Fprintf(stderr, "prism logs verify: %d records, no problems\n", res.Records)
			return 0
		}
		if errors.Is(err, ErrProblems) || errors.Is(err, ErrStrict) {
			fmt.Fprintf(stderr, "prism logs verify: %d records, %d with problems (%d problems)\n", res.Records, res.Bad, res.Problems)
			return 1
		}
		return usageErr(stderr, cmd, err)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, Usage)
		return 0
	}
	fmt.Fprintf(stderr, "prism logs: unknown command %q\n%s", cmd, Usage)
	return 2
}

// parse parses args into fs; flags may follow the files. A request for
// help sets *help.
func parse(fs *flag.FlagSet, args []string, help *bool) bool {
	// flags may follow the files: parse again after each file name
	var files []string
	for {
		if err := fs.Parse(args); err != nil {
			*help = errors.Is(err, flag.ErrHelp)
			return false
		}
		args = fs.Args()
		if len(args) == 0 {
			break
		}
		files = append(files, args[0])
		args = args[1:]
	}
	_ = fs.Parse(append([]string{"--"}, files...))
	return true
}

func need(stderr io.Writer, cmd, flagName, v string) bool {
	if v == "" {
		fmt.Fprintf(stderr, "prism logs %s: %s is required\n", cmd, flagName)
		return false
	}
	return true
}

func usageErr(stderr io.Writer, cmd string, err error) int {
	fmt.Fprintf(stderr, "prism logs %s: %v\n", cmd, err)
	return 2
}

func status(stderr io.Writer, cmd string, err error) int {
	switch {
	case err == nil:
		return 0
	case errors.Is(err, ErrProblems), errors.Is(err, ErrStrict):
		fmt.Fprintf(stderr, "prism logs %s: %v\n", cmd, err)
		return 1
	}
	fmt.Fprintf(stderr, "prism logs %s: %v\n", cmd, err)
	return 1
}

// withOutput runs run with stdout, or with the -o file when path is set.
// The -o file is replaced only when the run read all of its input (bad
// records included); a usage error, a write error or a --strict stop
// leaves it as it was.
func withOutput(stdout, stderr io.Writer, path string, run func(io.Writer) (Result, error)) int {
	w := stdout
	var out *outFile
	if path != "" {
		var err error
		if out, err = createOutput(path); err != nil {
			fmt.Fprintf(stderr, "prism logs: %v\n", err)
			return 1
		}
		w = out
	}
	res, err := run(w)
	var werr error
	kept := false
	if out != nil {
		if err == nil || errors.Is(err, ErrProblems) {
			werr = out.commit()
		} else {
			out.abort()
			kept = true
		}
	}
	if err != nil && !errors.Is(err, ErrProblems) && !errors.Is(err, ErrStrict) && res.Records == 0 {
		fmt.Fprintf(stderr, "prism logs: %v\n", err)
		return 2
	}
	if res.Bad > 0 {
		fmt.Fprintf(stderr, "prism logs: %d records read, %d written, %d bad\n", res.Records, res.Written, res.Bad)
	}
	if werr != nil {
		fmt.Fprintf(stderr, "prism logs: %s: %v\n", path, werr)
		return 1
	}
	switch {
	case err == nil:
		return 0
	case errors.Is(err, ErrProblems):
		return 1
	}
	fmt.Fprintf(stderr, "prism logs: %v\n", err)
	if kept {
		fmt.Fprintf(stderr, "prism logs: %s not written (left as it was)\n", path)
	}
	return 1
}

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/imprint-dev/imprint/inventory"
	"github.com/imprint-dev/imprint/partition"
	"github.com/imprint-dev/imprint/prepare"
	"github.com/imprint-dev/imprint/provision"
)

const planUsage = `usage: imprint plan [flags] FILE

Validates the provision document FILE (Nailgun's provision.json, JSON or
YAML; "-" reads stdin) and prints the storage plan fuel-agent's layout gives
it: every GPT partition with its MiB boundaries, md arrays, LVM PVs, VGs and
LVs, filesystems, which image goes to which device, the configdrive
partition and the disks that get grub.

Without --inventory the ks_spaces disks are taken as declared; with it
(the JSON of "imprint inventory") each is matched to a real disk and the
layout must fit it. Nothing is opened for writing.

Exit status: 0 planned, 2 invalid document or impossible layout (every
problem is printed on stderr), 1 a file could not be read.
`

// runPlan is `imprint plan FILE`.
func runPlan(_ context.Context, env *cmdEnv, args []string) int {
	fs := newFlagSet(env, "plan", planUsage)
	var (
		invPath       string
		output        string
		noConfigdrive bool
		grub          int
		bootMode      string
	)
	fs.StringVar(&invPath, "inventory", "", "hardware inventory JSON (imprint inventory) to match disks against")
	fs.StringVar(&output, "o", "text", "output format: text|json")
	fs.BoolVar(&noConfigdrive, "no-configdrive", false, "plan no configdrive partition (fuel-agent prepare_configdrive=false)")
	fs.IntVar(&grub, "grub", 0, "grub version 1|2 (md metadata 0.90 with 1); 0 guesses it from the profile")
	fs.StringVar(&bootMode, "boot-mode", "", "bios|uefi|both; default: ks_meta.boot_mode, else the --inventory's firmware boot mode, else bios")
	pos, code, ok := parseInterspersed(fs, args)
	if !ok {
		return code
	}
	if len(pos) != 1 {
		fmt.Fprintf(env.stderr, "plan: want one FILE, got %d argument(s)\n\n", len(pos))
		fs.Usage()
		return 2
	}
	if output != "text" && output != "json" {
		fmt.Fprintf(env.stderr, "plan: -o: want text or json, got %q\n", output)
		return 2
	}
	if grub != 0 && grub != 1 && grub != 2 {
		fmt.Fprintf(env.stderr, "plan: --grub: want 1 or 2, got %d\n", grub)
		return 2
	}
	switch bootMode {
	case "", provision.BootModeBIOS, provision.BootModeUEFI, provision.BootModeBoth:
	default:
		fmt.Fprintf(env.stderr, "plan: --boot-mode: want bios, uefi or both, got %q\n", bootMode)
		return 2
	}

	data, err := planReadInput(env.stdin, pos[0])
	if err != nil {
		fmt.Fprintf(env.stderr, "plan: %v\n", err)
		return 1
	}
	var inv *inventory.Inventory
	if invPath != "" {
		raw, err := planReadInput(env.stdin, invPath)
		if err != nil {
			fmt.Fprintf(env.stderr, "plan: %v\n", err)
			return 1
		}
		inv = &inventory.Inventory{}
		if err := json.Unmarshal(raw, inv); err != nil {
			fmt.Fprintf(env.stderr, "plan: inventory %s: %v\n", invPath, err)
			return 2
		}
	}

	opts := partition.DefaultPlanOptions()
	opts.PrepareConfigdrive = !noConfigdrive
	opts.GrubVersion = grub
	opts.BootMode = bootMode // "": the document's, else the inventory's firmware (prepare)
	// The same prepare stage as a provision: what passes here fails later
	// only for a reason that needs the hardware or the network.
	job, err := prepare.Prepare(context.Background(), data, inv, prepare.Options{Plan: &opts})
	if err != nil {
		planPrintProblems(env.stderr, pos[0], err)
		return 2
	}
	plan := job.Plan
	var warnings []string
	for _, w := range job.Warnings {
		warnings = append(warnings, w.String())
		fmt.Fprintf(env.stderr, "plan: warning: %s\n", w)
	}
	if output == "json" {
		out := planJSON{
			PartitionScheme: plan.Scheme(),
			Images:          plan.Images,
			Bootloader:      plan.Bootloader,
			Configdrive:     plan.Configdrive,
			KeepData:        plan.KeepData,
			Warnings:        warnings,
		}
		enc := json.NewEncoder(env.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(out); err != nil {
			fmt.Fprintf(env.stderr, "plan: %v\n", err)
			return 1
		}
		return 0
	}
	planWriteText(env.stdout, plan)
	return 0
}

// planJSON is `imprint plan -o json`: fuel-agent's PartitionScheme field
// names plus the image, bootloader and configdrive assignments.
type planJSON struct {
	provision.PartitionScheme
	Images      []partition.Image `json:"images"`
	Bootloader  []string          `json:"bootloader"`
	Configdrive string            `json:"configdrive"`
	KeepData    bool              `json:"keep_data"`
	Warnings    []string          `json:"warnings,omitempty"`
}

func planReadInput(stdin io.Reader, path string) ([]byte, error) {
	if path == "-" {
		return provision.ReadDocument(stdin, "stdin")
	}
	return provision.ReadDocumentFile(path) // errors name the file
}

// planPrintProblems prints every problem of a validation or planning error,
// one per line, prefixed with the file name.
func planPrintProblems(w io.Writer, file string, err error) {
	var pe *prepare.Error
	if errors.As(err, &pe) {
		for _, p := range pe.Problems {
			fmt.Fprintf(w, "%s: %s: %s\n", file, p.Path, p.Msg)
		}
		for _, p := range pe.Warnings {
			fmt.Fprintf(w, "%s: warning: %s: %s\n", file, p.Path, p.Msg)
		}
		fmt.Fprintf(w, "%s: %d problem(s)\n", file, len(pe.Problems))
		return
	}
	var ve *provision.ValidationError
	if errors.As(err, &ve) {
		for _, p := range ve.Problems {
			fmt.Fprintf(w, "%s: %s\n", file, p.Error())
		}
		fmt.Fprintf(w, "%s: %d problem(s)\n", file, len(ve.Problems))
		return
	}
	var joined interface{ Unwrap() []error }
	if errors.As(err, &joined) {
		errs := joined.Unwrap()
		for _, e := range errs {
			fmt.Fprintf(w, "%s: %v\n", file, e)
		}
		fmt.Fprintf(w, "%s: %d problem(s)\n", file, len(errs))
		return
	}
	fmt.Fprintf(w, "%s: %v\n", file, err)
}

// planHolds describes what a partition holds, for the table.
func planHolds(p *partition.Plan, part partition.Partition) string {
	switch part.Purpose {
	case partition.PurposeBiosGrub:
		return "bios_grub (grub core)"
	case partition.PurposeUEFI:
		return "UEFI placeholder (empty)"
	case partition.PurposeConfigdrive:
		return "configdrive (config-2)"
	case partition.PurposePV:
		return "LVM PV of vg " + part.VG
	case partition.PurposeRaid:
		return "md member of " + part.MD
	case partition.PurposeCephJournal:
		return "ceph journal"
	}
	for _, fs := range p.FSs {
		if fs.Device == part.Device {
			s := fs.Type
			if fs.Mount != "" {
				s = fs.Mount + " " + fs.Type
			}
			if fs.Image {
				s += " (image)"
			}
			return s
		}
	}
	return "nothing"
}

// planWriteText prints the plan as tables, without trailing blanks.
func planWriteText(out io.Writer, p *partition.Plan) {
	var buf bytes.Buffer
	planWriteTables(&buf, p)
	for _, line := range strings.SplitAfter(buf.String(), "\n") {
		if line == "" {
			continue
		}
		io.WriteString(out, strings.TrimRight(line, " \n")+"\n")
	}
}

// planRows is one table row (tab-separated cells) per element of xs.
func planRows[T any](xs []T, row func(T) string) []string {
	out := make([]string, 0, len(xs))
	for _, x := range xs {
		out = append(out, row(x))
	}
	return out
}

func planWriteTables(w io.Writer, p *partition.Plan) {
	yes := func(b bool, s string) string {
		if b {
			return s
		}
		return ""
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "DISK\t#\tBEGIN–END MiB\tSIZE MiB\tHOLDS\tTYPE GUID\t")
	for _, d := range p.Disks {
		for _, part := range d.Partitions {
			holds := planHolds(p, part)
			if part.KeepData {
				holds += " [keep]"
			}
			fmt.Fprintf(tw, "%s\t%d\t%d–%d\t%d\t%s\t%s\n", d.Device, part.Number, part.BeginMiB, part.EndMiB, part.SizeMiB(), holds, part.TypeGUID)
		}
	}
	tw.Flush()
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Disks:")
	for _, d := range p.Disks {
		size := "declared size unknown"
		if d.SizeMiB > 0 {
			size = fmt.Sprintf("%d MiB", d.SizeMiB)
		}
		var end int64
		if n := len(d.Partitions); n > 0 {
			end = d.Partitions[n-1].EndMiB
		}
		fmt.Fprintf(w, "  %s  %s, %s, %d partitions, last ends at %d MiB%s\n", d.Device, size, d.Label, len(d.Partitions), end, yes(d.Bootloader, ", grub"))
	}
	// section prints a titled table of rows (tab-separated cells), when
	// there are any.
	section := func(title string, rows []string) {
		if len(rows) == 0 {
			return
		}
		fmt.Fprintln(w, title)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		for _, r := range rows {
			fmt.Fprintln(tw, "  "+r)
		}
		tw.Flush()
	}
	section("MD arrays:", planRows(p.MDs, func(md partition.MD) string {
		spares := ""
		if len(md.Spares) > 0 {
			spares = " spares " + strings.Join(md.Spares, " ")
		}
		return fmt.Sprintf("%s\t%s\tmetadata %s\tmembers %s%s\t%s", md.Device, md.Level, md.Metadata, strings.Join(md.Members, " "), spares, yes(md.KeepData, "[keep]"))
	}))
	section("Physical volumes:", planRows(p.PVs, func(pv partition.PV) string {
		return fmt.Sprintf("%s\tvg %s\tmetadatasize %d MiB\tmetadatacopies %d\t%s", pv.Device, pv.VG, pv.MetadataSizeMiB, pv.MetadataCopies, yes(pv.KeepData, "[keep]"))
	}))
	section("Volume groups:", planRows(p.VGs, func(vg partition.VG) string {
		return fmt.Sprintf("%s\t%s\t%s", vg.Name, strings.Join(vg.PVs, " "), yes(vg.KeepData, "[keep]"))
	}))
	section("Logical volumes:", planRows(p.LVs, func(lv partition.LV) string {
		return fmt.Sprintf("%s/%s\t%d MiB\t%s\t%s", lv.VG, lv.Name, lv.SizeMiB, lv.Device, yes(lv.KeepData, "[keep]"))
	}))
	section("Filesystems:", planRows(p.FSs, func(fs partition.FS) string {
		mount := fs.Mount
		if mount == "" {
			mount = "-"
		}
		what := "mkfs"
		switch {
		case fs.Image:
			what = "image target (no mkfs)"
		case fs.KeepData:
			what = "kept (no mkfs)"
		}
		label := ""
		if fs.Label != "" {
			label = "label " + fs.Label
		}
		return fmt.Sprintf("%s\t%s\t%s\t%s\t%s", fs.Device, fs.Type, mount, what, label)
	}))
	section("Images:", planRows(p.Images, func(img partition.Image) string {
		return fmt.Sprintf("%s\t→ %s\t%s, %s\t%s", img.Mount, img.Device, img.Format, img.Container, img.URI)
	}))
	cd := p.Configdrive
	if cd == "" {
		cd = "none"
	}
	fmt.Fprintf(w, "Configdrive: %s\n", cd)
	bl := "none"
	if len(p.Bootloader) > 0 {
		bl = strings.Join(p.Bootloader, " ")
	}
	fmt.Fprintf(w, "Bootloader (grub stage 1): %s\n", bl)
	if p.KeepData {
		fmt.Fprintln(w, "keep_data: existing layout reused: no wipe, no partitioning, no md/LVM creation; only non-kept, non-image filesystems are made")
	}
}

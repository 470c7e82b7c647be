package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"reflect"
	"strings"
	"time"

	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/prevention"
)

// stepLine is one line of a steps file.
type stepLine struct {
	Type      *string           `json:"type"`
	Tokens    int64             `json:"tokens"`
	CostCents float64           `json:"cost_cents"`
	Model     string            `json:"model"`
	Tool      string            `json:"tool"`
	Input     string            `json:"input"`
	Output    string            `json:"output"`
	AtMS      *int64            `json:"at_ms"`
	Metadata  map[string]string `json:"metadata"`
}

// scriptedStep is a parsed step: its line in the file, its time after
// the run's start, and what is reported to the runner.
type scriptedStep struct {
	line int
	at   time.Duration
	in   governance.StepInput
}

// parseSteps reads a whole steps file (JSONL: one JSON object per line;
// blank lines are skipped) and validates every step before any is run.
// An error names the file and the line.
func parseSteps(name string, r io.Reader) ([]scriptedStep, error) {
	br := bufio.NewReader(r)
	var (
		steps  []scriptedStep
		prevAt int64
	)
	for lineNo := 1; ; lineNo++ {
		line, err := br.ReadBytes('\n')
		if err != nil && err != io.EOF {
			return nil, fmt.Errorf("%s: reading line %d: %w", name, lineNo, err)
		}
		if trimmed := bytes.TrimSpace(line); len(trimmed) > 0 {
			st, perr := parseStepLine(trimmed, prevAt)
			if perr != nil {
				return nil, fmt.Errorf("%s: line %d: %w", name, lineNo, perr)
			}
			st.line = lineNo
			prevAt = st.at.Milliseconds()
			steps = append(steps, st)
		}
		if err == io.EOF {
			break
		}
	}
	if len(steps) == 0 {
		return nil, fmt.Errorf("%s: no steps (want one JSON object per line)", name)
	}
	return steps, nil
}

func parseStepLine(line []byte, prevAt int64) (scriptedStep, error) {
	var sl stepLine
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&sl); err != nil {
		return scriptedStep{}, describeJSONError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return scriptedStep{}, errors.New("more than one JSON value on the line")
	}
	if sl.Type == nil {
		return scriptedStep{}, errors.New(`"type" is missing (llm_response, tool_call, tool_result or message)`)
	}
	in := governance.StepInput{
		Type: prevention.StepType(*sl.Type), Model: sl.Model, Tool: sl.Tool, Input: sl.Input, Output: sl.Output,
		Tokens: sl.Tokens, CostCents: sl.CostCents, Metadata: sl.Metadata,
	}
	// The runner's own checks, made for the whole file before the run
	// starts, so that a bad line records nothing.
	if err := in.Validate(); err != nil {
		return scriptedStep{}, errors.New(strings.TrimPrefix(err.Error(), governance.ErrInvalidStep.Error()+": "))
	}
	at := prevAt
	if sl.AtMS != nil {
		at = *sl.AtMS
		if at < 0 {
			return scriptedStep{}, fmt.Errorf("at_ms %d is negative", at)
		}
		if at < prevAt {
			return scriptedStep{}, fmt.Errorf("at_ms %d is before the previous step's %d (steps are in time order)", at, prevAt)
		}
		if at > math.MaxInt64/int64(time.Millisecond) {
			return scriptedStep{}, fmt.Errorf("at_ms %d is too large", at)
		}
	}
	return scriptedStep{at: time.Duration(at) * time.Millisecond, in: in}, nil
}

// describeJSONError says what is wrong with a line's JSON in the steps
// file's terms.
func describeJSONError(err error) error {
	var (
		se *json.SyntaxError
		te *json.UnmarshalTypeError
	)
	switch {
	case errors.As(err, &se):
		return fmt.Errorf("malformed JSON at column %d: %v", se.Offset, se)
	case errors.As(err, &te):
		if te.Field == "" {
			return fmt.Errorf("want a JSON object, got %s", te.Value)
		}
		return fmt.Errorf("%s: want %s, got %s", te.Field, jsonKind(te.Type), te.Value)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return errors.New("malformed JSON: unexpected end of line")
	}
	return errors.New(strings.TrimPrefix(err.Error(), "json: "))
}

func jsonKind(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Int64, reflect.Int:
		return "a whole number"
	case reflect.Float64:
		return "a number"
	case reflect.String:
		return "a string"
	case reflect.Map:
		return "an object of strings"
	}
	return t.String()
}

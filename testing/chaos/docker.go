package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// run executes a command bounded by timeout and returns its trimmed
// standard output; a failure carries standard error.
func run(ctx context.Context, timeout time.Duration, env []string, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		// The end of standard error says why; progress lines before it do not.
		lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
		msg := strings.Join(lines[max(0, len(lines)-3):], " | ")
		if len(msg) > 500 {
			msg = msg[len(msg)-500:]
		}
		return "", fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, msg)
	}
	return strings.TrimSpace(stdout.String()), nil
}

// Compose runs docker-compose for one project of the repository's
// docker-compose.yml.
type Compose struct {
	Bin     string // docker-compose
	File    string
	Project string
	Env     []string // KEY=VALUE added for variable substitution
}

func (c Compose) run(ctx context.Context, timeout time.Duration, args ...string) (string, error) {
	return run(ctx, timeout, c.Env, c.Bin, append([]string{"-f", c.File, "-p", c.Project}, args...)...)
}

// Up creates and starts services (with their dependencies) in the
// background.
func (c Compose) Up(ctx context.Context, services ...string) error {
	_, err := c.run(ctx, 3*time.Minute, append([]string{"up", "-d", "--no-color"}, services...)...)
	return err
}

// UpProfile starts services that belong to a profile.
func (c Compose) UpProfile(ctx context.Context, profile string, services ...string) error {
	_, err := c.run(ctx, 3*time.Minute, append([]string{"--profile", profile, "up", "-d", "--no-color", "--no-deps"}, services...)...)
	return err
}

// Down removes every container, network and volume of the project. Paused
// containers are resumed first so that they can be stopped.
func (c Compose) Down(ctx context.Context) error {
	if ids, err := c.containers(ctx, "status=paused"); err == nil && len(ids) > 0 {
		_, _ = run(ctx, time.Minute, nil, "docker", append([]string{"unpause"}, ids...)...)
	}
	_, err := c.run(ctx, 3*time.Minute, "--profile", "spare", "--profile", "dc2", "down", "-v", "--remove-orphans", "-t", "5")
	return err
}

// Container returns the ID of a service's container, running or not.
func (c Compose) Container(ctx context.Context, service string) (string, error) {
	ids, err := c.containers(ctx, "label=com.docker.compose.service="+service)
	if err != nil {
		return "", err
	}
	if len(ids) != 1 {
		return "", fmt.Errorf("service %s of project %s has %d containers", service, c.Project, len(ids))
	}
	return ids[0], nil
}

// Services maps the service name of every container of the project to
// the container's ID.
func (c Compose) Services(ctx context.Context) (map[string]string, error) {
	out, err := run(ctx, 30*time.Second, nil, "docker", "ps", "-a", "--filter", "label=com.docker.compose.project="+c.Project,
		"--format", `{{.ID}} {{.Label "com.docker.compose.service"}}`)
	if err != nil {
		return nil, err
	}
	m := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		if id, svc, ok := strings.Cut(strings.TrimSpace(line), " "); ok {
			m[svc] = id
		}
	}
	return m, nil
}

func (c Compose) containers(ctx context.Context, filter string) ([]string, error) {
	out, err := run(ctx, 30*time.Second, nil, "docker", "ps", "-aq",
		"--filter", "label=com.docker.compose.project="+c.Project, "--filter", filter)
	if err != nil {
		return nil, err
	}
	return strings.Fields(out), nil
}

// docker runs one docker CLI command on a container with a bound.
func docker(ctx context.Context, args ...string) error {
	_, err := run(ctx, 90*time.Second, nil, "docker", args...)
	return err
}

// ContainerState is what the driver needs to know of a container.
type ContainerState struct {
	Status   string // created, running, paused, restarting, exited, dead
	Pid      int
	ExitCode int
	OOM      bool
	IPs      []string
}

func inspect(ctx context.Context, id string) (ContainerState, error) {
	out, err := run(ctx, 30*time.Second, nil, "docker", "inspect", "-f",
		`{{.State.Status}} {{.State.Pid}} {{.State.ExitCode}} {{.State.OOMKilled}}{{range .NetworkSettings.Networks}} {{.IPAddress}}{{end}}`, id)
	if err != nil {
		return ContainerState{}, err
	}
	f := strings.Fields(out)
	if len(f) < 4 {
		return ContainerState{}, fmt.Errorf("docker inspect %s: unexpected %q", id, out)
	}
	var s ContainerState
	s.Status = f[0]
	s.Pid, _ = strconv.Atoi(f[1])
	s.ExitCode, _ = strconv.Atoi(f[2])
	s.OOM = f[3] == "true"
	for _, ip := range f[4:] {
		if ip != "" {
			s.IPs = append(s.IPs, ip)
		}
	}
	return s, nil
}

// saveLogs writes a container's whole log, with timestamps, to path.
func saveLogs(ctx context.Context, id, path string) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, "docker", "logs", "--timestamps", id)
	cmd.Stdout, cmd.Stderr = f, f
	err = cmd.Run()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// inNetns runs a host command (iptables, tc) inside the network namespace
// of the process pid.
func inNetns(ctx context.Context, pid int, args ...string) error {
	_, err := run(ctx, 30*time.Second, nil, "nsenter", append([]string{"-t", strconv.Itoa(pid), "-n"}, args...)...)
	return err
}

// iptables runs the host's iptables inside the network namespace of pid.
func iptables(ctx context.Context, pid int, args ...string) error {
	return inNetns(ctx, pid, append([]string{"iptables", "-w", "5"}, args...)...)
}

// probe is the test bed's tool image: a static binary that stands in for busybox in smoke checks.
//
//	probe sleep                  waits until SIGTERM
//	probe lookup NAME...         resolves each name with the pod's resolv.conf; fails if one fails
//	probe wait-lookup SECS NAME  retries a lookup until it succeeds or SECS pass
//	probe serve PORT             answers every TCP connection with the pod's hostname
//	probe get HOST:PORT          prints what serve answered
//	probe wait-get SECS HOST:PORT retries get until it succeeds or SECS pass
//	probe hostname               prints the hostname
//	probe write-file PATH        writes the hostname to PATH (checks a volume is writable)
//
// Commands can be chained with "--": probe wait-lookup 60 a.b -- get a.b:80 runs both in turn.
package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fail("usage: probe sleep | lookup NAME... | wait-lookup SECS NAME | serve PORT | get HOST:PORT | wait-get SECS HOST:PORT | hostname | write-file PATH [-- more]")
	}
	var cmd []string
	for _, a := range append(os.Args[1:], "--") {
		if a != "--" {
			cmd = append(cmd, a)
			continue
		}
		if len(cmd) > 0 {
			run(cmd[0], cmd[1:])
		}
		cmd = nil
	}
}

func run(name string, args []string) {
	switch name {
	case "sleep":
		ch := make(chan os.Signal, 1)
		signal.Notify(ch, syscall.SIGTERM, syscall.SIGINT)
		<-ch
	case "lookup":
		for _, name := range args {
			if err := lookup(name); err != nil {
				fail(err.Error())
			}
		}
	case "wait-lookup":
		if len(args) != 2 {
			fail("usage: probe wait-lookup SECS NAME")
		}
		secs, err := strconv.Atoi(args[0])
		if err != nil {
			fail(err.Error())
		}
		deadline := time.Now().Add(time.Duration(secs) * time.Second)
		for {
			err := lookup(args[1])
			if err == nil {
				return
			}
			if time.Now().After(deadline) {
				fail(err.Error())
			}
			time.Sleep(time.Second)
		}
	case "serve":
		if len(args) != 1 {
			fail("usage: probe serve PORT")
		}
		serve(args[0])
	case "get":
		if len(args) != 1 {
			fail("usage: probe get HOST:PORT")
		}
		if err := get(args[0]); err != nil {
			fail(err.Error())
		}
	case "wait-get":
		if len(args) != 2 {
			fail("usage: probe wait-get SECS HOST:PORT")
		}
		secs, err := strconv.Atoi(args[0])
		if err != nil {
			fail(err.Error())
		}
		deadline := time.Now().Add(time.Duration(secs) * time.Second)
		for {
			err := get(args[1])
			if err == nil {
				return
			}
			if time.Now().After(deadline) {
				fail(err.Error())
			}
			time.Sleep(time.Second)
		}
	case "write-file":
		if len(args) != 1 {
			fail("usage: probe write-file PATH")
		}
		h, _ := os.Hostname()
		if err := os.WriteFile(args[0], []byte(h+"\n"), 0o644); err != nil {
			fail(err.Error())
		}
	case "hostname":
		h, err := os.Hostname()
		if err != nil {
			fail(err.Error())
		}
		fmt.Println(h)
	default:
		fail("unknown command " + name)
	}
}

func lookup(name string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r := &net.Resolver{PreferGo: true}
	addrs, err := r.LookupHost(ctx, name)
	if err != nil {
		return err
	}
	fmt.Printf("%s %v\n", name, addrs)
	return nil
}

func get(addr string) error {
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	b, err := io.ReadAll(conn)
	if err != nil {
		return err
	}
	if len(b) == 0 {
		return fmt.Errorf("%s answered nothing", addr)
	}
	fmt.Printf("%s answered: %s", addr, b)
	return nil
}

func serve(port string) {
	host, _ := os.Hostname()
	ln, err := net.Listen("tcp", ":"+port)
	if err != nil {
		fail(err.Error())
	}
	go func() {
		ch := make(chan os.Signal, 1)
		signal.Notify(ch, syscall.SIGTERM, syscall.SIGINT)
		<-ch
		os.Exit(0)
	}()
	for {
		conn, err := ln.Accept()
		if err != nil {
			fail(err.Error())
		}
		fmt.Fprintln(conn, host)
		conn.Close()
	}
}

func fail(msg string) {
	fmt.Fprintln(os.Stderr, "probe:", msg)
	os.Exit(1)
}

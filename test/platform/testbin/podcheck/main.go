// podcheck runs inside a test pod on the local node and reports, as one JSON
// line, what a pod of the platform must see: no default route, the apiserver
// through the `kubernetes` Service with the pod's projected token and a
// verified certificate, and the host's servers (PODCHECK_URL: space-separated
// URLs, e.g. on the node host and each site host). Exit 0 only if all hold.
// Stdlib only, static: the image is this one file.
package main

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"
)

const saDir = "/var/run/secrets/kubernetes.io/serviceaccount"

type report struct {
	Routes       []string       `json:"routes"`
	DefaultRoute bool           `json:"defaultRoute"`
	User         string         `json:"user,omitempty"`
	HostStatus   map[string]int `json:"hostStatus,omitempty"`
	Errors       []string       `json:"errors,omitempty"`
}

// routes reads the IPv4 routing table: "destination/mask via gateway".
func routes() ([]string, bool, error) {
	f, err := os.Open("/proc/net/route")
	if err != nil {
		return nil, false, err
	}
	defer f.Close()
	var out []string
	def := false
	s := bufio.NewScanner(f)
	s.Scan() // header
	for s.Scan() {
		fields := strings.Fields(s.Text())
		if len(fields) < 8 {
			continue
		}
		dst, gw, mask := hexIP(fields[1]), hexIP(fields[2]), hexIP(fields[7])
		if dst == "0.0.0.0" && mask == "0.0.0.0" {
			def = true
		}
		ones, _ := net.IPMask(net.ParseIP(mask).To4()).Size()
		out = append(out, fmt.Sprintf("%s/%d via %s dev %s", dst, ones, gw, fields[0]))
	}
	return out, def, s.Err()
}

func hexIP(h string) string {
	var v uint32
	fmt.Sscanf(h, "%x", &v)
	return net.IPv4(byte(v), byte(v>>8), byte(v>>16), byte(v>>24)).String()
}

// whoami asks the apiserver, through the kubernetes Service, who the pod's token is.
func whoami() (string, error) {
	token, err := os.ReadFile(saDir + "/token")
	if err != nil {
		return "", err
	}
	ca, err := os.ReadFile(saDir + "/ca.crt")
	if err != nil {
		return "", err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		return "", fmt.Errorf("no certificate in %s/ca.crt", saDir)
	}
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	host := net.JoinHostPort(os.Getenv("KUBERNETES_SERVICE_HOST"), os.Getenv("KUBERNETES_SERVICE_PORT"))
	body := `{"apiVersion":"authentication.k8s.io/v1","kind":"SelfSubjectReview"}`
	req, _ := http.NewRequest("POST", "https://"+host+"/apis/authentication.k8s.io/v1/selfsubjectreviews", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(token)))
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("SelfSubjectReview: HTTP %d: %s", resp.StatusCode, raw)
	}
	var review struct {
		Status struct {
			UserInfo struct {
				Username string `json:"username"`
			} `json:"userInfo"`
		} `json:"status"`
	}
	if err := json.Unmarshal(raw, &review); err != nil {
		return "", err
	}
	return review.Status.UserInfo.Username, nil
}

func main() {
	var r report
	fail := func(err error) { r.Errors = append(r.Errors, err.Error()) }
	var err error
	if r.Routes, r.DefaultRoute, err = routes(); err != nil {
		fail(err)
	}
	if r.DefaultRoute {
		fail(fmt.Errorf("the pod has a default route"))
	}
	if r.User, err = whoami(); err != nil {
		fail(err)
	}
	r.HostStatus = map[string]int{}
	for _, url := range strings.Fields(os.Getenv("PODCHECK_URL")) {
		resp, err := (&http.Client{Timeout: 10 * time.Second}).Get(url)
		if err != nil {
			fail(err)
		} else {
			r.HostStatus[url] = resp.StatusCode
			resp.Body.Close()
		}
	}
	line, _ := json.Marshal(r)
	fmt.Println(string(line))
	if len(r.Errors) > 0 {
		os.Exit(1)
	}
}

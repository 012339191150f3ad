package cmd

import "sigs.k8s.io/yaml"

func jsonToYAML(b []byte) ([]byte, error) { return yaml.JSONToYAML(b) }

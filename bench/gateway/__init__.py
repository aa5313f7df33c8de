"""`make bench-gateway`: the user's path — a back office POSTing dossiers to its gateway, the
recipient's back office reading and acknowledging its inbox — through real `lvvx gateway
run` processes, on a Kafka broker of its own and on the embedded log. See bench/README.md."""

"""Ways to run the system: `deploy.local` on one machine; compose and Kubernetes files for real machines."""

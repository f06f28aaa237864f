"""Admin pages for webhook subscriptions and deliveries."""

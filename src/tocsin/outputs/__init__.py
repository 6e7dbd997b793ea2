"""What tocsin tells the world: CAP 1.2 messages, feeds and the views built on transitions."""

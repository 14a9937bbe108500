"""What a run is asked to do: scenarios, target profiles (+ the built-in ones in
`profiles/`), and keeping credentials out of what is written."""

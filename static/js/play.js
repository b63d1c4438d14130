// The table: built by the front-end work.

"""What kic writes for people: the snapshot's page and charts, the xlsx workbook, the validation page,
and the words and colours of personas. Data in, text or a file where they are told out; they read
no settings."""

CREATE TABLE "turn_frames" (
	"turn_id" text NOT NULL,
	"id" integer NOT NULL,
	"json" text NOT NULL,
	"terminal" boolean DEFAULT false NOT NULL,
	CONSTRAINT "turn_frames_turn_id_id_pk" PRIMARY KEY("turn_id","id")
);
--> statement-breakpoint
CREATE TABLE "write_probe" (
	"id" integer PRIMARY KEY NOT NULL,
	"at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
ALTER TABLE "turns" ADD COLUMN "stream_slot" integer;--> statement-breakpoint
ALTER TABLE "turn_frames" ADD CONSTRAINT "turn_frames_turn_id_turns_id_fk" FOREIGN KEY ("turn_id") REFERENCES "public"."turns"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE UNIQUE INDEX "turns_running_slot_uq" ON "turns" USING btree ("user_id","stream_slot") WHERE "turns"."status" = 'running';--> statement-breakpoint
ALTER TABLE "turns" ADD CONSTRAINT "turns_stream_slot_free" CHECK ("turns"."stream_slot" IS NULL OR "turns"."stream_slot" > 0);
CREATE TABLE "image_chunks" (
	"image_id" text NOT NULL,
	"seq" integer NOT NULL,
	"bytes" "bytea" NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "image_chunks_image_id_seq_pk" PRIMARY KEY("image_id","seq")
);
--> statement-breakpoint
CREATE INDEX "image_chunks_created_idx" ON "image_chunks" USING btree ("created_at");--> statement-breakpoint
CREATE INDEX "images_session_idx" ON "images" USING btree ("session_id");--> statement-breakpoint
-- Hand-added: the bytes stored so far move to the image store's chunk table (embedded PGlite moves them on to files at boot).
INSERT INTO "image_chunks" ("image_id", "seq", "bytes", "created_at") SELECT "id", 0, "bytes", "created_at" FROM "images";--> statement-breakpoint
ALTER TABLE "images" DROP COLUMN "bytes";